"""``acd replay --live``: a scenario played onto a running daemon over a
real Mosquitto, with the player acting as the telephony side, gives the same
outcome as the offline replay of the same scenario."""

from __future__ import annotations

import asyncio
import json

import pytest

from acd.bus import Topics
from acd.core.spec import spec_from_obj
from acd.daemon import Daemon, Options
from acd.live import play
from acd.replay import Replay
from acd.scenario import ContactLine

SPEC = spec_from_obj({
    "queues": [{"name": "support", "skills": {"s": 1}}],
    "agents": [{"group": "a", "count": 3, "skills": {"s": 1}}],
})


def scenario(n: int = 40) -> list:
    # 3 agents, a contact every 20 s, 45 s each: some wait, none abandons
    return [(i * 20.0, ContactLine(id=f"c{i}", arrival=i * 20.0, queue="support", handle_time=45.0))
            for i in range(n)]


async def test_live_replay_over_mqtt_matches_the_offline_replay(tmp_path, mosquitto):
    from acd.bus.mqtt import MqttBus

    offline = Replay(SPEC, start=0.0).run(scenario())["total"]
    topics = Topics("live")
    daemon = Daemon(SPEC, MqttBus(mosquitto.url, topics, client_id="acd-live-test"), tmp_path / "journal",
                    Options(watch_config=False, fsync="never", tenant="live"))
    await daemon.start()
    try:
        result = await asyncio.wait_for(play(mosquitto.url, scenario(), 0.0, tenant="live", speed=100.0), 60)
    finally:
        await daemon.stop()
    assert result["offered"] == offline["offered"] == 40
    assert result["answered"] == offline["answered"] == 40
    assert result["completed"] == 40 and result["in_system_at_end"] == 0 and result["rejected"] == 0
    # waits are wall-clock in the daemon; scaled back they are close to the
    # offline ASA (a few ms of latency x 100 is the tolerance)
    assert result["asa"] == pytest.approx(offline["asa"], abs=3.0)
    # the daemon's own state agrees: every contact done
    assert not daemon.state.engine.contacts


def test_live_needs_a_good_url(capsys, tmp_path):
    from acd.cli import main

    scen = tmp_path / "s.jsonl"
    scen.write_text(json.dumps({"id": "c1", "arrival": 0, "queue": "support", "handle_time": 1}) + "\n")
    cfg = tmp_path / "c.yaml"
    cfg.write_text("queues: [{name: support}]\nagents: [{group: a, count: 1}]\n")
    assert main(["replay", str(cfg), str(scen), "--live", "http://x", "--no-progress"]) == 2
    assert "--live" in capsys.readouterr().err
