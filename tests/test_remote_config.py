"""`mlver remote add/modify/list/remove/default` through the real CLI: where each setting
lands, credentials kept out of the committed file, and one-line errors."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

from conftest import run, run_json


def test_empty_remote_url_is_refused(repo: Path) -> None:
    proc = run(["remote", "add", "empty", ""], repo, check=False)
    assert proc.returncode == 2 and proc.stderr.startswith("mlver: error: a remote URL cannot be empty")
    assert "empty" not in (repo / ".mlver" / "config").read_text()


def test_add_list_default_remove(repo: Path, tmp_path: Path) -> None:
    run(["remote", "add", "-d", "first", str(tmp_path / "one")], repo)
    run(["remote", "add", "second", "s3://bucket/prefix"], repo)
    run(["remote", "modify", "second", "endpoint_url", "http://127.0.0.1:9000"], repo)
    run(["remote", "modify", "second", "region", "eu-west-1"], repo)
    doc = run_json(["remote", "list"], repo)
    assert doc["version"] == 1
    by_name = {r["name"]: r for r in doc["remotes"]}
    assert by_name["first"]["default"] is True and by_name["second"]["default"] is False
    assert by_name["second"]["options"] == {"endpoint_url": "http://127.0.0.1:9000", "region": "eu-west-1"}
    committed = (repo / ".mlver" / "config").read_text()
    assert '[remote "second"]' in committed and "endpoint_url = http://127.0.0.1:9000" in committed

    run(["remote", "default", "second"], repo)
    assert run(["remote", "default"], repo).stdout.strip() == "second"
    run(["remote", "modify", "second", "region", "--unset"], repo)
    assert "region" not in run_json(["remote", "list"], repo)["remotes"][1]["options"]

    run(["remote", "remove", "second"], repo)
    assert [r["name"] for r in run_json(["remote", "list"], repo)["remotes"]] == ["first"]
    assert "second" not in (repo / ".mlver" / "config").read_text()
    proc = run(["remote", "default"], repo, check=False)
    assert proc.returncode == 3 and "no default remote" in proc.stderr

    proc = run(["remote", "add", "first", "/elsewhere"], repo, check=False)
    assert proc.returncode == 2 and "already exists" in proc.stderr
    run(["remote", "add", "-f", "first", "/elsewhere"], repo)
    assert run_json(["remote", "list"], repo)["remotes"][0]["url"] == "/elsewhere"


def test_a_relative_folder_is_taken_from_where_the_user_stands(repo: Path, tmp_path: Path) -> None:
    """`remote add NAME ../store` in a subfolder means the folder beside that subfolder
    (as the shell and DVC read it); it is stored relative to the project root, and a
    push from anywhere in the project lands there."""
    sub = repo / "src" / "deep"
    sub.mkdir(parents=True)
    proc = run(["remote", "add", "-d", "store", "../../../store"], sub)
    assert "-> ../store" in proc.stderr
    assert "url = ../store" in (repo / ".mlver" / "config").read_text()
    run(["remote", "modify", "store", "url", "../elsewhere"], sub)
    assert "url = src/elsewhere" in (repo / ".mlver" / "config").read_text()
    run(["remote", "modify", "store", "url", "../store"], repo)  # from the root: as typed
    assert "url = ../store" in (repo / ".mlver" / "config").read_text()
    (repo / "data.bin").write_bytes(b"payload")
    run(["add", "../../data.bin"], sub)
    run(["push"], sub)
    store = repo.parent / "store"
    assert store.is_dir() and any(p.is_file() and p.read_bytes() == b"payload" for p in store.rglob("*"))


def test_credentials_only_in_local_config(repo: Path) -> None:
    run(["remote", "add", "-d", "s3", "s3://bucket/x"], repo)
    proc = run(["remote", "modify", "s3", "secret_access_key", "hunter2"], repo, check=False)
    assert proc.returncode == 2
    assert proc.stderr.startswith("mlver: error:") and "--local" in proc.stderr
    run(["remote", "modify", "--local", "s3", "secret_access_key", "hunter2"], repo)
    assert "hunter2" not in (repo / ".mlver" / "config").read_text()
    assert "hunter2" in (repo / ".mlver" / "config.local").read_text()
    listed = run_json(["remote", "list"], repo)["remotes"][0]
    assert listed["options"] == {"secret_access_key": "***"}
    assert "hunter2" not in run(["remote", "list", "--json"], repo).stdout
    # remove drops it from every file
    run(["remote", "remove", "s3"], repo)
    assert "hunter2" not in (repo / ".mlver" / "config.local").read_text()


def test_bad_names_options_and_urls(repo: Path) -> None:
    proc = run(["remote", "add", "bad name", "/x"], repo, check=False)
    assert proc.returncode == 2 and "invalid remote name" in proc.stderr
    proc = run(["remote", "add", "x", "ftp://host/x"], repo, check=False)
    assert proc.returncode == 2 and "unsupported remote URL" in proc.stderr
    run(["remote", "add", "folder", "/x"], repo)
    proc = run(["remote", "modify", "folder", "endpoint_url", "http://x"], repo, check=False)
    assert proc.returncode == 2 and "not an option" in proc.stderr
    proc = run(["remote", "modify", "nope", "url", "/y"], repo, check=False)
    assert proc.returncode == 3 and "not configured" in proc.stderr
    proc = run(["push", "-r", "nope"], repo, check=False)
    assert proc.returncode == 3 and "remote 'nope' is not configured" in proc.stderr


@pytest.mark.skipif(importlib.util.find_spec("gcsfs") is not None, reason="gcsfs is installed here")
def test_missing_backend_names_the_extra(repo: Path) -> None:
    proc = run(["remote", "add", "gcs", "gs://bucket/x"], repo, check=False)
    assert proc.returncode == 3
    lines = proc.stderr.strip().splitlines()
    assert lines == ['mlver: error: remote \'gcs\' (gs://bucket/x) needs the gcsfs package: pip install "mlver[gs]"']


def test_no_remote_configured(repo: Path) -> None:
    proc = run(["push"], repo, check=False)
    assert proc.returncode == 3 and "no remote is configured" in proc.stderr
    assert "mlver remote add" in proc.stderr


def test_http_remote_is_read_only(repo: Path) -> None:
    run(["remote", "add", "-d", "web", "https://example.invalid/store"], repo)
    proc = run(["push"], repo, check=False)
    assert proc.returncode == 3 and "read-only" in proc.stderr


def test_doctor_lists_remotes(repo: Path, tmp_path: Path) -> None:
    run(["remote", "add", "-d", "store", str(tmp_path / "store")], repo)
    doc = json.loads(run(["doctor", "--json"], repo).stdout)
    assert doc["remotes"] == [{"name": "store", "url": str(tmp_path / "store"), "default": True,
                               "backend": "local", "extra": None, "installed": True}]
    assert "Remote store (default)" in run(["doctor"], repo).stdout


def test_help_does_not_import_fsspec(repo: Path) -> None:
    import subprocess
    import sys

    code = ("import sys; from mlver.cli import cli; "
            "bad = [m for m in ('fsspec', 's3fs', 'sshfs', 'git', 'yaml') if m in sys.modules]; print(bad)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
    for cmd in (["remote", "--help"], ["push", "--help"], ["gc", "--help"], ["fsck", "--help"]):
        assert run(cmd, repo).stdout.startswith("Usage:")


def test_password_in_a_url_stays_out_of_the_committed_file(repo: Path) -> None:
    url = "ssh://me:hunter2@127.0.0.1:2222/srv/store"
    proc = run(["remote", "add", "s", url], repo, check=False)
    assert proc.returncode == 2 and "holds a password" in proc.stderr
    proc = run(["remote", "add", "--local", "s", url], repo)
    assert "hunter2" not in proc.stderr
    assert "hunter2" not in (repo / ".mlver/config").read_text()
    assert "hunter2" in (repo / ".mlver/config.local").read_text()
    listing = run(["remote", "list"], repo).stdout
    assert "hunter2" not in listing and "me:***@127.0.0.1" in listing
    assert run(["remote", "modify", "s", "url", url], repo, check=False).returncode == 2


def test_option_values_are_checked_when_set(repo: Path) -> None:
    run(["remote", "add", "s3", "s3://bucket/prefix"], repo)
    run(["remote", "add", "sh", "ssh://me@127.0.0.1/srv/store"], repo)
    for name, key, value, problem in [
        ("sh", "port", "abc", "port: expected a port number"),
        ("sh", "port", "70000", "port: expected a port number"),
        ("sh", "timeout", "soon", "timeout: expected a number of seconds"),
        ("s3", "endpoint_url", "127.0.0.1:9000", "endpoint_url: expected an http:// or https:// URL"),
        ("s3", "ssl_verify", "maybe", "ssl_verify: expected true or false"),
        ("s3", "jobs", "0", "jobs: expected a positive whole number"),
    ]:
        proc = run(["remote", "modify", name, key, value], repo, check=False)
        assert proc.returncode == 2 and problem in proc.stderr, (key, value, proc.stderr)
    run(["remote", "modify", "sh", "port", "2222"], repo)
    run(["remote", "modify", "s3", "endpoint_url", "http://127.0.0.1:9000"], repo)
    run(["remote", "modify", "s3", "ssl_verify", "false"], repo)


def test_a_value_on_two_lines_is_refused_and_the_config_is_untouched(repo: Path) -> None:
    """Config files are line-based: a value or key with a line break would be read back as
    something else; it is a one-line usage error and nothing is written."""
    before = (repo / ".mlver/config").read_bytes()
    for args in (["config", "core.remote", "a\nb"],
                 ["remote", "add", "r", "/tmp/x\n[core]\nremote = evil"],
                 ["config", "remote.r\n[core].url", "/tmp/x"],
                 ["config", "core.remote", "a\rb"]):
        proc = run(args, repo, check=False)
        assert proc.returncode == 2, (args, proc.stderr)
        assert proc.stderr.startswith("mlver: error: "), proc.stderr
        assert len(proc.stderr.strip().splitlines()) <= 2
        assert (repo / ".mlver/config").read_bytes() == before
