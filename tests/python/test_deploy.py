"""What ships in deploy/: the daemon speaks systemd's notify protocol (READY, WATCHDOG, STOPPING) to a
test-owned NOTIFY_SOCKET; the unit passes `systemd-analyze verify`; the Dockerfile passes hadolint; the ECS
task definition has the shape ECS expects (health check on `lakefold health`, awslogs, a stop timeout for
the last commit, a non-root user, secrets not in plain environment)."""
import json
import os
import pathlib
import shutil
import signal
import socket
import subprocess
import sys
import time

import pytest

from conftest import BIN, gen, lakefold, write_config, write_events
from servers import free_port

REPO = pathlib.Path(__file__).resolve().parents[2]


def test_the_daemon_tells_systemd_ready_watchdog_and_stopping_and_answers_health(tmp):
    write_events(tmp / "events.jsonl", gen.generate(300, seed=5))
    port = free_port()
    cfg = write_config(tmp, tmp / "events.jsonl", commit='[metrics]\nlisten = "127.0.0.1:%d"\n' % port)
    notify = tmp / "notify.sock"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(notify))
    sock.settimeout(0.2)
    env = dict(os.environ, NOTIFY_SOCKET=str(notify), WATCHDOG_USEC="1000000")
    proc = subprocess.Popen([BIN, "--config", str(cfg), "run"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    messages = []

    def receive_until(pred, timeout):
        deadline = time.time() + timeout
        while time.time() < deadline and not pred():
            try:
                # One datagram may carry several newline-separated assignments.
                messages.extend(l for l in sock.recv(4096).decode().splitlines() if l)
            except socket.timeout:
                pass
    try:
        receive_until(lambda: "READY=1" in messages and messages.count("WATCHDOG=1") >= 2, 30)
        assert lakefold("--config", cfg, "health").returncode == 0
        proc.send_signal(signal.SIGTERM)
        receive_until(lambda: "STOPPING=1" in messages, 30)
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
        sock.close()
    assert proc.returncode == 0, err[-3000:]
    assert messages.index("READY=1") < messages.index("STOPPING=1"), messages
    assert messages.count("WATCHDOG=1") >= 2, messages
    # No daemon: unhealthy, with the reason.
    gone = lakefold("--config", cfg, "health", check=False)
    assert gone.returncode == 1 and "127.0.0.1:%d" % port in gone.stderr


def test_the_systemd_unit_passes_systemd_analyze_verify(tmp):
    analyze = shutil.which("systemd-analyze")
    if not analyze:
        pytest.skip("systemd-analyze is not installed (scripts/test.sh installs systemd where apt can)")
    unit = (REPO / "deploy/systemd/lakefold.service").read_text().replace("/usr/local/bin/lakefold", BIN)
    (tmp / "lakefold.service").write_text(unit)
    proc = subprocess.run([analyze, "verify", "--man=no", str(tmp / "lakefold.service")], capture_output=True, text=True, timeout=60)
    problems = [l for l in (proc.stdout + proc.stderr).splitlines() if "lakefold.service" in l]
    assert proc.returncode == 0 and not problems, proc.stdout + proc.stderr
    for setting in ("Type=notify", "WatchdogSec=", "Restart=on-failure", "RestartPreventExitStatus=78", "DynamicUser=yes",
                    "ProtectSystem=strict", "StateDirectory=", "NoNewPrivileges=yes", "PrivateTmp=yes",
                    "CapabilityBoundingSet=\n", "EnvironmentFile="):
        assert setting in unit, setting


def test_the_dockerfile_passes_hadolint():
    hadolint = pathlib.Path(sys.executable).parent / "hadolint"
    proc = subprocess.run([str(hadolint), "--no-color", str(REPO / "deploy/Dockerfile")], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    text = (REPO / "deploy/Dockerfile").read_text()
    assert "USER 10001" in text and "strip target/release/lakefold" in text and text.count("FROM ") == 2


def test_the_ecs_task_definition_has_the_shape_ecs_expects():
    task = json.loads((REPO / "deploy/ecs/task-definition.json").read_text())
    assert task["family"] and task["taskRoleArn"].startswith("arn:aws:iam::") and task["executionRoleArn"]
    assert task["networkMode"] == "awsvpc" and "FARGATE" in task["requiresCompatibilities"]
    assert int(task["cpu"]) >= 256 and int(task["memory"]) >= 512
    [c] = task["containerDefinitions"]
    assert c["essential"] is True and c["image"]
    assert c["user"].split(":")[0] != "0" and c["readonlyRootFilesystem"] is True
    check = c["healthCheck"]
    assert check["command"][0] == "CMD" and check["command"][-1] == "health" and check["startPeriod"] >= 60
    assert 60 <= c["stopTimeout"] <= 120, "ECS caps stopTimeout at 120 s; a commit needs time to finish"
    logs = c["logConfiguration"]
    assert logs["logDriver"] == "awslogs" and {"awslogs-group", "awslogs-region", "awslogs-stream-prefix"} <= set(logs["options"])
    assert any(p["containerPort"] == 9464 for p in c["portMappings"])
    assert not any("PASSWORD" in e["name"] or "SECRET" in e["name"] for e in c.get("environment", []))
    assert all(s["valueFrom"].startswith("arn:aws:") for s in c.get("secrets", []))
