#!/usr/bin/env python3
"""Generate Debezium SQL Server change events for the ERP's wide ``dbo.SALES`` table.

Each output line is one Kafka message value exactly as Debezium's JsonConverter writes it for the SQL Server
connector (``mssql.dbo.SALES`` topic): the envelope with its Connect schema (default), or without it
(``--no-schema``, i.e. ``value.converter.schemas.enable=false``), with ``null`` tombstones after deletes.

The stream is realistic for the AWS blog pipeline lakefold replaces: sales are inserted, change status, get
re-assigned to another agent (AgentId 7 -> 8), agents/units/statuses are renamed over time, some sales are
deleted, a few events are redelivered (duplicates), and arrival order can be shuffled locally (as events of
different keys arrive from different Kafka partitions) so "last value" must follow the LSNs, not the lines.

    python3 scripts/gen_sales_events.py --events 2500 --seed 42 > config/sample/sales.jsonl

The module also computes the expected last-value fold of each route independently of lakefold (used by the
tests): ``expected_tables(events)``.
"""
import argparse
import base64
import datetime
import bisect
import json
import random
import sys

COLUMNS = [
    ("SaleId", "int32", None), ("AgentId", "int32", None), ("AgentName", "string", None),
    ("UnitId", "int32", None), ("UnitName", "string", None), ("BuildingId", "int32", None),
    ("BuildingName", "string", None), ("ProjectId", "int32", None), ("ProjectName", "string", None),
    ("StatusId", "int32", None), ("StatusName", "string", None),
    ("ContractSubtotal", "bytes", "org.apache.kafka.connect.data.Decimal"),
    ("ContractSigningDate", "int64", "io.debezium.time.Timestamp"),
]

# The six routes of design.md: (table, key, columns, on_delete)
ROUTES = [
    ("agents", ["AgentId"], ["AgentId", "AgentName"], "ignore"),
    ("units", ["UnitId"], ["UnitId", "UnitName", "BuildingId"], "ignore"),
    ("buildings", ["BuildingId"], ["BuildingId", "BuildingName", "ProjectId"], "ignore"),
    ("projects", ["ProjectId"], ["ProjectId", "ProjectName"], "ignore"),
    ("statuses", ["StatusId"], ["StatusId", "StatusName"], "ignore"),
    ("sales", ["SaleId"], ["SaleId", "UnitId", "StatusId", "ContractSubtotal", "ContractSigningDate", "AgentId"], "delete"),
]


def row_schema(field):
    fields = []
    for name, ty, logical in COLUMNS:
        f = {"type": ty, "optional": name != "SaleId", "field": name}
        if logical:
            f["name"] = logical
            f["version"] = 1
        if logical == "org.apache.kafka.connect.data.Decimal":
            f["parameters"] = {"scale": "4", "connect.decimal.precision": "18"}
        fields.append(f)
    return {"type": "struct", "fields": fields, "optional": True, "name": "mssql.dbo.SALES.Value", "field": field}


SOURCE_SCHEMA = {"type": "struct", "optional": False, "name": "io.debezium.connector.sqlserver.Source", "field": "source", "fields": [
    {"type": "string", "optional": False, "field": "version"}, {"type": "string", "optional": False, "field": "connector"},
    {"type": "string", "optional": False, "field": "name"}, {"type": "int64", "optional": False, "field": "ts_ms"},
    {"type": "string", "optional": True, "field": "snapshot"}, {"type": "string", "optional": False, "field": "db"},
    {"type": "string", "optional": False, "field": "schema"}, {"type": "string", "optional": False, "field": "table"},
    {"type": "string", "optional": True, "field": "change_lsn"}, {"type": "string", "optional": True, "field": "commit_lsn"},
    {"type": "int64", "optional": True, "field": "event_serial_no"}]}

ENVELOPE_SCHEMA = {"type": "struct", "optional": False, "name": "mssql.dbo.SALES.Envelope", "version": 1, "fields": [
    row_schema("before"), row_schema("after"), SOURCE_SCHEMA,
    {"type": "string", "optional": False, "field": "op"}, {"type": "int64", "optional": True, "field": "ts_ms"}]}


def lsn_text(n):
    return "%08x:%08x:%04x" % ((n >> 48) & 0xFFFFFFFF, (n >> 16) & 0xFFFFFFFF, n & 0xFFFF)


def decimal_b64(unscaled):
    length = max(1, (unscaled.bit_length() + 8) // 8)
    return base64.b64encode(unscaled.to_bytes(length, "big", signed=True)).decode()


class Generator:
    def __init__(self, seed, n_agents=25, n_units=80, n_buildings=16, n_projects=5, n_statuses=6):
        self.rng = random.Random(seed)
        self.agent_names = {a: "Agent %d" % a for a in range(1, n_agents + 1)}
        self.projects = {p: "Project %s" % chr(64 + p) for p in range(1, n_projects + 1)}
        self.buildings = {b: ("Building %d" % b, self.rng.randint(1, n_projects)) for b in range(1, n_buildings + 1)}
        self.units = {u: ("Unit %d" % u, self.rng.randint(1, n_buildings)) for u in range(1, n_units + 1)}
        self.statuses = {s: name for s, name in zip(range(1, n_statuses + 1),
                                                     ["Reserved", "Signed", "Financed", "Registered", "Cancelled", "Delivered"])}
        self.sales = {}
        self.ids = []  # sorted(self.sales), kept incrementally (ids only grow; deletes bisect)
        self.next_sale = 1
        self.lsn = (0x27 << 48) | (0x758 << 16)
        self.ts = 1_700_000_000_000

    def image(self, sale):
        unit_name, building = self.units[sale["UnitId"]]
        building_name, project = self.buildings[building]
        return {
            "SaleId": sale["SaleId"], "AgentId": sale["AgentId"], "AgentName": self.agent_names[sale["AgentId"]],
            "UnitId": sale["UnitId"], "UnitName": unit_name, "BuildingId": building, "BuildingName": building_name,
            "ProjectId": project, "ProjectName": self.projects[project], "StatusId": sale["StatusId"],
            "StatusName": self.statuses[sale["StatusId"]], "ContractSubtotal": sale["ContractSubtotal"],
            "ContractSigningDate": sale["ContractSigningDate"],
        }

    def event(self, op, before, after):
        self.lsn += self.rng.randint(1, 40)
        change = self.lsn
        self.lsn += self.rng.randint(1, 5)
        self.ts += self.rng.randint(100, 60_000)
        return {"op": op, "before": before, "after": after, "ts_ms": self.ts,
                "commit_lsn": lsn_text(self.lsn), "change_lsn": lsn_text(change),
                "event_serial_no": 2 if op == "u" else 1}

    def step(self):
        r = self.rng.random()
        if not self.sales or r < 0.40:
            sid = self.next_sale
            self.next_sale += 1
            sale = {"SaleId": sid, "AgentId": self.rng.randint(1, len(self.agent_names)),
                    "UnitId": self.rng.randint(1, len(self.units)), "StatusId": 1,
                    "ContractSubtotal": self.rng.randint(10_000_000, 9_000_000_000) * 10 + self.rng.randint(0, 9),
                    "ContractSigningDate": self.ts - self.rng.randint(0, 10**9)}
            self.sales[sid] = sale
            self.ids.append(sid)
            return [self.event("c", None, self.image(sale))]
        sid = self.rng.choice(self.ids)
        sale = self.sales[sid]
        before = self.image(sale)
        if r < 0.55:
            del self.sales[sid]
            del self.ids[bisect.bisect_left(self.ids, sid)]
            return [self.event("d", before, None), None]
        if r < 0.70:
            sale["StatusId"] = self.rng.randint(1, len(self.statuses))
        elif r < 0.80:
            sale["AgentId"] = self.rng.randint(1, len(self.agent_names))  # re-assignment: AgentId 7 -> 8
        elif r < 0.87:
            a = sale["AgentId"]
            self.agent_names[a] = "Agent %d (renamed %d)" % (a, self.rng.randint(1, 999))
        elif r < 0.92:
            u = sale["UnitId"]
            self.units[u] = ("Unit %d rev %d" % (u, self.rng.randint(1, 99)), self.units[u][1])
        elif r < 0.96:
            s = sale["StatusId"]
            self.statuses[s] = "%s v%d" % (self.statuses[s].split(" v")[0], self.rng.randint(2, 9))
        else:
            sale["ContractSubtotal"] += self.rng.randint(-5000, 5000)
        return [self.event("u", before, self.image(sale))]


def generate(n_events, seed=42, duplicates=0.02, shuffle_window=0):
    """Returns a list of events (dicts) and None tombstones, in arrival order."""
    gen = Generator(seed)
    out = []
    count = 0
    while count < n_events:
        step = gen.step()
        out.extend(step)
        count += sum(1 for e in step if e is not None)
        if out[-1] is not None and gen.rng.random() < duplicates:
            out.append(dict(out[-1]))  # a redelivery: same LSNs
            count += 1
    if shuffle_window > 1:
        rng = random.Random(seed + 1)
        for start in range(0, len(out), shuffle_window):
            chunk = out[start:start + shuffle_window]
            # keep each sale's own events in order (they share a Kafka partition); interleave different sales
            by_sale = {}
            for e in chunk:
                key = None if e is None else (e["after"] or e["before"])["SaleId"]
                by_sale.setdefault(key, []).append(e)
            queues = list(by_sale.values())
            merged = []
            while queues:
                q = rng.choice(queues)
                merged.append(q.pop(0))
                if not q:
                    queues.remove(q)
            out[start:start + shuffle_window] = merged
    return out


def encode(event, with_schema=True, decimal_mode="precise"):
    """One message value as Debezium's JsonConverter writes it."""
    if event is None:
        return "null"

    def row(img):
        if img is None:
            return None
        r = dict(img)
        if decimal_mode == "string":
            v = r["ContractSubtotal"]
            r["ContractSubtotal"] = None if v is None else "%d.%04d" % divmod(v, 10000) if v >= 0 else "-%d.%04d" % divmod(-v, 10000)
        else:
            r["ContractSubtotal"] = None if r["ContractSubtotal"] is None else decimal_b64(r["ContractSubtotal"])
        return r

    payload = {"before": row(event["before"]), "after": row(event["after"]),
               "source": {"version": "2.7.0.Final", "connector": "sqlserver", "name": "mssql", "ts_ms": event["ts_ms"],
                          "snapshot": "false", "db": "MYCOMPANY", "schema": "dbo", "table": "SALES",
                          "change_lsn": event["change_lsn"], "commit_lsn": event["commit_lsn"],
                          "event_serial_no": event["event_serial_no"]},
               "op": event["op"], "ts_ms": event["ts_ms"]}
    if with_schema:
        return json.dumps({"schema": ENVELOPE_SCHEMA, "payload": payload}, separators=(",", ":"))
    return json.dumps(payload, separators=(",", ":"))


def lsn_key(event, line):
    def n(t):
        a, b, c = t.split(":")
        return (int(a, 16) << 48) | (int(b, 16) << 16) | int(c, 16)
    return (n(event["commit_lsn"]), n(event["change_lsn"]), event["event_serial_no"], line)


def expected_tables(events):
    """The last-value fold of every route, computed without lakefold: {table: {key: {column: value}}}.

    Values are Python ints/strings; ContractSubtotal is the unscaled decimal (scale 4), ContractSigningDate
    epoch milliseconds."""
    tables = {}
    for table, key, columns, on_delete in ROUTES:
        best = {}
        for line, e in enumerate(events, start=1):
            if e is None:
                continue
            is_delete = e["op"] == "d"
            if is_delete and on_delete == "ignore":
                continue
            img = e["before"] if is_delete else e["after"]
            k = tuple(img[c] for c in key)
            pos = lsn_key(e, line)
            if k not in best or pos > best[k][0]:
                best[k] = (pos, None if is_delete else {c: img[c] for c in columns})
        tables[table] = {k: v for k, (_, v) in best.items() if v is not None}
    return tables


SQL_COLUMNS = [("SaleId", "int"), ("AgentId", "int"), ("AgentName", "nvarchar(100)"), ("UnitId", "int"),
               ("UnitName", "nvarchar(100)"), ("BuildingId", "int"), ("BuildingName", "nvarchar(100)"),
               ("ProjectId", "int"), ("ProjectName", "nvarchar(100)"), ("StatusId", "int"),
               ("StatusName", "nvarchar(50)"), ("ContractSubtotal", "decimal(18,4)"),
               ("ContractSigningDate", "datetime2(3)")]


def lsn_hex(text):
    """`0000002b:00000e0d:0005` -> `0x0000002B00000E0D0005` (binary(10), as the CDC fixture takes it)."""
    a, b, c = text.split(":")
    return "0x%08X%08X%04X" % (int(a, 16), int(b, 16), int(c, 16))


def sql_values(img):
    out = dict(img)
    v = out["ContractSubtotal"]
    out["ContractSubtotal"] = None if v is None else ("-" if v < 0 else "") + "%d.%04d" % divmod(abs(v), 10000)
    ms = out["ContractSigningDate"]
    if ms is not None:
        out["ContractSigningDate"] = iso_ms(ms)
    return out


def iso_ms(ms):
    """Epoch milliseconds as SQL Server's datetime text (no zone; read as UTC)."""
    d = datetime.datetime.fromtimestamp(ms / 1000, tz=datetime.timezone.utc)
    return d.strftime("%Y-%m-%dT%H:%M:%S.") + "%03d" % (ms % 1000)


def cdc_history(events, database="MYCOMPANY", min_lsn=None):
    """The change history of dbo.SALES that `events` describe, in lakefold-mssql-fixture's format: inserts
    (2), deletes (1), updates as before/after pairs (3/4) sharing a seqval; redeliveries appear once."""
    changes, seen, commits = [], set(), {}
    for e in events:
        if e is None or (e["commit_lsn"], e["change_lsn"]) in seen:
            continue
        seen.add((e["commit_lsn"], e["change_lsn"]))
        start, seq = lsn_hex(e["commit_lsn"]), lsn_hex(e["change_lsn"])
        commits[start] = max(commits.get(start, 0), e["ts_ms"])
        ops = {"c": [(2, e["after"])], "d": [(1, e["before"])], "u": [(3, e["before"]), (4, e["after"])]}[e["op"]]
        for op, img in ops:
            changes.append({"start_lsn": start, "seqval": seq, "operation": op, "values": sql_values(img)})
    first = min(commits) if commits else "0x00000000000000000000"
    history = {"database": database,
               "capture_instances": [{"name": "dbo_SALES", "source_schema": "dbo", "source_table": "SALES",
                                      "start_lsn": first,
                                      "columns": [{"name": n, "type": t, "nullable": n != "SaleId", "key": n == "SaleId"}
                                                  for n, t in SQL_COLUMNS],
                                      "changes": changes}],
               "lsn_time_mapping": [{"start_lsn": c, "tran_end_time": iso_ms(commits[c])} for c in sorted(commits)]}
    if min_lsn:
        history["min_lsn"] = {"dbo_SALES": min_lsn}
    return history


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--events", type=int, default=2500, help="number of change events (tombstones come on top)")
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("--no-schema", action="store_true", help="JsonConverter schemas.enable=false")
    ap.add_argument("--decimal-mode", choices=["precise", "string"], default="precise",
                    help="Debezium decimal.handling.mode (string: ContractSubtotal as text)")
    ap.add_argument("--duplicates", type=float, default=0.02, help="share of events redelivered")
    ap.add_argument("--shuffle-window", type=int, default=8, help="interleave different sales within windows")
    args = ap.parse_args()
    for e in generate(args.events, args.seed, args.duplicates, args.shuffle_window):
        sys.stdout.write(encode(e, not args.no_schema, args.decimal_mode) + "\n")


if __name__ == "__main__":
    main()
