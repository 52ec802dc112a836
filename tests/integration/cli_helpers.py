"""What the CLI tests that drive `paratrain.cli.main` in process against a devnet share: an isolated
environment and the two ways a command ends (its output, or one error line)."""
from __future__ import annotations

from pathlib import Path
from typing import Any

from paratrain.cli import main


def isolate(monkeypatch: Any, tmp_path: Path, chain_url: str) -> None:
    """The chain, a home and a store of this test's own, wide tables, no key from the environment."""
    monkeypatch.setenv("PARATRAIN_CHAIN", chain_url)
    monkeypatch.setenv("PARATRAIN_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("PARATRAIN_ARTIFACTS", str(tmp_path / "store"))
    monkeypatch.setenv("COLUMNS", "220")  # full addresses fit the status tables
    for name in ("PARATRAIN_KEY", "PARATRAIN_KEY_PASSWORD"):
        monkeypatch.delenv(name, raising=False)


def run(capsys: Any, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def one_line_error(capsys: Any, *argv: str) -> str:
    """The one `error:` line a refused command prints (exit status 2; --key //X's warning aside)."""
    code, _, err = run(capsys, *argv)
    lines = [line for line in err.strip().splitlines() if not line.startswith("warning: a secret")]
    assert code == 2 and len(lines) == 1 and lines[0].startswith("error:"), err
    return lines[0]
