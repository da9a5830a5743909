"""Bad input goes to the dead-letter table (never dropped, never a crash); abandoned writes are rolled back."""
import base64
import json

from conftest import assert_tables_match, gen, lakefold, read_daft, read_hudi, write_config, write_events

DEAD = "_lakefold_dead_letters"


def test_malformed_lines_are_dead_lettered_with_line_raw_bytes_and_error(tmp):
    events = gen.generate(300, seed=21)
    path = tmp / "events.jsonl"
    write_events(path, events[:100])
    good = gen.encode(events[0])
    no_key = json.loads(gen.encode(events[0], with_schema=False))
    no_key["after"].pop("SaleId", None)
    no_key["after"].pop("AgentId", None)
    wrong_type = json.loads(good)
    wrong_type["payload"]["after"] = dict(wrong_type["payload"]["after"] or wrong_type["payload"]["before"], SaleId="seventeen")
    wrong_type["payload"]["op"] = "c"
    bad = ['{"this is": not json', json.dumps(no_key), json.dumps(wrong_type), "\x00\x01 garbage", '{"op": "x", "after": {}, "source": {}}']
    with open(path, "a") as f:
        for line in bad:
            f.write(line + "\n")
    bad_lines = list(range(len(events[:100]) + 1, len(events[:100]) + 1 + len(bad)))
    write_events(path, events[100:], append=True)
    cfg = write_config(tmp, path)
    proc = lakefold("--config", cfg, "run", "--once")
    assert_tables_match(tmp / "lake", gen.expected_tables(events))

    letters = read_hudi(tmp / "lake" / DEAD)
    assert len(read_daft(tmp / "lake" / DEAD, ["id", "line", "error"])) == len(letters)
    by_line = {}
    for r in letters:
        by_line.setdefault(r["line"], []).append(r)
    assert sorted(by_line) == bad_lines, letters
    for line, raw in zip(bad_lines, bad):
        for r in by_line[line]:
            assert base64.b64decode(r["raw_base64"]).decode("utf-8", "replace") == raw
            assert r["location"].endswith("line %d" % line) or ("line %d " % line) in r["location"], r["location"]
            assert r["error"]
    # the record without key columns fails every route that needs them, each named
    no_key_letters = by_line[bad_lines[1]]
    assert {r["table_name"] for r in no_key_letters} == {"sales", "agents"}
    assert all("missing" in r["error"] for r in no_key_letters)
    assert any("SaleId" in r["error"] for r in by_line[bad_lines[2]])
    assert by_line[bad_lines[0]][0]["table_name"] is None and "invalid JSON" in by_line[bad_lines[0]][0]["error"]
    n = sum(len(v) for v in by_line.values())
    assert ("%d dead letters" % n) in proc.stderr, proc.stderr

    # a rerun neither duplicates dead letters nor commits anything
    lakefold("--config", cfg, "run", "--once")
    assert len(read_hudi(tmp / "lake" / DEAD)) == len(letters)

    # the operator's view: every letter listed with where it was and why; one shown with its raw record
    listed = lakefold("--config", cfg, "dead-letters", "list").stdout
    assert "(%d of %d dead letters)" % (n, n) in listed, listed
    for r in letters:
        assert r["id"] in listed and r["location"] in listed
    only_sales = lakefold("--config", cfg, "dead-letters", "list", "--table", "sales").stdout
    in_sales = sum(1 for r in letters if r["table_name"] == "sales")
    assert "(%d of %d dead letters of table sales)" % (in_sales, in_sales) in only_sales, only_sales
    first = next(r for r in letters if r["line"] == bad_lines[0])
    shown = lakefold("--config", cfg, "dead-letters", "show", first["id"]).stdout
    assert "error: " + first["error"].splitlines()[0] in shown and bad[0] in shown, shown
    missing = lakefold("--config", cfg, "dead-letters", "show", "no-such-id", check=False)
    assert missing.returncode == 1 and "no dead letter with id" in missing.stderr


def test_an_abandoned_instant_is_rolled_back_before_the_next_write(tmp):
    events = gen.generate(400, seed=4)
    path = tmp / "events.jsonl"
    write_events(path, events[:200])
    cfg = write_config(tmp, path)
    lakefold("--config", cfg, "run", "--once")
    table = tmp / "lake" / "agents"
    # a crashed writer: requested + inflight + a base file of an instant that never completed, in an existing
    # file group (readers must not see it, and the next write must remove it)
    current = [p for p in table.iterdir() if p.suffix == ".parquet"][0]
    file_id = current.name.split("_")[0]
    crashed = "29990101000000000"
    (table / ".hoodie" / (crashed + ".commit.requested")).write_text("")
    (table / ".hoodie" / (crashed + ".inflight")).write_text("{}")
    orphan = table / ("%s_0-0-0_%s.parquet" % (file_id, crashed))
    orphan.write_bytes(current.read_bytes())
    write_events(path, events[200:], append=True)
    proc = lakefold("--config", cfg, "run", "--once")
    assert "rolled back" in proc.stderr
    assert not orphan.exists()
    assert not (table / ".hoodie" / (crashed + ".inflight")).exists()
    assert not (table / ".hoodie" / (crashed + ".commit.requested")).exists()
    assert_tables_match(tmp / "lake", gen.expected_tables(events))
    # the rolled-back instant left no trace: two completed commits remain
    instants = sorted(p.name.split(".")[0] for p in (table / ".hoodie").iterdir() if p.name.endswith(".commit"))
    assert instants == sorted(set(instants)) and len(instants) == 2
