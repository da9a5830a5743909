use super::*;
use std::path::Path;

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

#[test]
fn the_embedded_default_loads_with_six_routes() {
    let config = load(&repo().join("config/lakefold.toml")).unwrap();
    let tables: Vec<&str> = config.routes.iter().map(|r| r.table.as_str()).collect();
    assert_eq!(
        tables,
        [
            "agents",
            "units",
            "buildings",
            "projects",
            "statuses",
            "sales"
        ]
    );
    assert_eq!(config.route("sales").unwrap().on_delete, OnDelete::Delete);
    assert_eq!(config.commit.max_bytes, ByteSize(128 * 1024 * 1024));
}

#[test]
fn routes_one_per_file_load_like_the_default() {
    let split = load(&repo().join("config/examples/sales-split.toml")).unwrap();
    let default = load(&repo().join("config/lakefold.toml")).unwrap();
    let mut a: Vec<_> = split
        .routes
        .iter()
        .map(|r| (r.table.clone(), r.key.clone(), r.projection()))
        .collect();
    let mut b: Vec<_> = default
        .routes
        .iter()
        .map(|r| (r.table.clone(), r.key.clone(), r.projection()))
        .collect();
    a.sort();
    b.sort();
    assert_eq!(a, b);
    assert_eq!(split.includes.len(), 6);
}

#[test]
fn every_error_is_reported_with_line_and_key() {
    let text = r#"
[lake]
uri = "./lake"

[sources.a]
type = "debezium-file"
path = "x.jsonl"
extra = 1

[sources.b]
type = "carrier-pigeon"

[[route]]
table = "t"
source = "a"
from = "dbo.T"
key = ["id"]
columns = { id = "Id", name = "Name" }
types = { name = "varchar2", missing = "int" }

[[route]]
table = "t"
source = "zzz"
from = "dbo.T"
key = []
columns = ["x", "x"]
"#;
    let errors = load_str(Path::new("test.toml"), text).unwrap_err().0;
    let find = |key: &str, needle: &str| {
        errors
            .iter()
            .find(|e| e.key.contains(key) && e.message.contains(needle))
            .unwrap_or_else(|| panic!("no error for {key} / {needle}: {errors:#?}"))
    };
    assert_eq!(find("sources.a", "extra").line, Some(8));
    assert_eq!(find("sources.b.type", "carrier-pigeon").line, Some(11));
    assert_eq!(find("types.name", "varchar2").line, Some(19));
    assert_eq!(find("types.missing", "not among").line, Some(19));
    assert_eq!(find("table", "already written").line, Some(22));
    assert_eq!(find("source", "unknown source `zzz`").line, Some(23));
    find("key", "at least one");
    assert_eq!(find("columns[1]", "twice").line, Some(26));
    assert!(errors.iter().all(|e| e.file == Path::new("test.toml")));
}

#[test]
fn a_syntax_error_is_reported_with_its_position() {
    let errors = load_str(Path::new("bad.toml"), "[lake]\nuri = \n")
        .unwrap_err()
        .0;
    assert_eq!(errors.len(), 1);
    assert_eq!(errors[0].line, Some(2));
}

#[test]
fn rename_tables_keep_their_order() {
    let text = "[lake]\nuri = \"l\"\n[sources.s]\ntype = \"debezium-file\"\npath = \"p\"\n[[route]]\ntable = \"t\"\nsource = \"s\"\nfrom = \"dbo.T\"\nkey = [\"z\"]\ncolumns = { z = \"Z\", a = \"A\", m = \"M\" }\n";
    let config = load_str(Path::new("c.toml"), text).unwrap();
    let outs: Vec<String> = config.routes[0]
        .projection()
        .into_iter()
        .map(|(o, _)| o)
        .collect();
    assert_eq!(outs, ["z", "a", "m"]);
}

#[test]
fn secrets_are_refused_in_connection_strings() {
    let text = "[lake]\nuri = \"l\"\n[sources.db]\ntype = \"sqlserver-cdc\"\nconnection = \"server=tcp:h,1433;password=hunter2\"\ncapture_instances = [\"dbo_SALES\"]\n[[route]]\ntable = \"t\"\nsource = \"db\"\nfrom = \"dbo.T\"\nkey = [\"a\"]\ncolumns = [\"a\"]\n";
    let errors = load_str(Path::new("c.toml"), text).unwrap_err().0;
    assert!(
        errors
            .iter()
            .any(|e| e.message.contains("LAKEFOLD_SQLSERVER_PASSWORD")),
        "{errors:#?}"
    );
}
