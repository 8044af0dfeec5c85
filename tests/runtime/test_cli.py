"""The `larry` entry: every command's help shows examples; the worker's says where the payload goes."""
import pytest

from runtime.cli import COMMANDS, main


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_every_command_s_help_has_examples(command, capsys):
    with pytest.raises(SystemExit) as done:
        main([command, "--help"])
    assert done.value.code == 0
    out = capsys.readouterr().out
    assert "\nexamples:\n" in out and f"larry {command} " in out.split("examples:")[1]


def test_the_worker_s_help_explains_the_payload_after_the_double_dash(capsys):
    with pytest.raises(SystemExit):
        main(["worker", "--help"])
    out = capsys.readouterr().out
    assert "The payload (the agent) is every argument after `--`" in out
    assert "-- my-agent" in out


def test_simulate_takes_the_shared_speed_default(monkeypatch):
    from runtime.cli import build_parser
    monkeypatch.delenv("LARRY_SPEED", raising=False)
    assert build_parser("simulate").parse_args(["simulate"]).speed == 1.0
    monkeypatch.setenv("LARRY_SPEED", "60")
    assert build_parser("simulate").parse_args(["simulate"]).speed == 60.0


@pytest.mark.parametrize("content, expected", [
    (b"config:\n  larry:x: \"\xff\"\n", "line 2: not UTF-8 text (byte 0xff)"),
    (b"config: [1, 2\n", "not valid YAML"),
    (None, "stack file not found"),
])
def test_a_bad_plan_file_is_one_line_and_exit_2(tmp_path, capsys, content, expected):
    plan = tmp_path / "plan.yaml"
    if content is not None:
        plan.write_bytes(content)
    assert main(["status", "--plan", str(plan)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and expected in err and "Traceback" not in err, err
