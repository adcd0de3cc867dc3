"""The deployment files an operator applies: Kubernetes manifests validated against the API
schemas (kubernetes-validate, strict), the Compose file against the Compose specification
(compose-spec), and every command they run exists in the CLI. No Docker engine or cluster is needed."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click
import compose_spec
import kubernetes_validate
import pytest
import typer
import yaml

from prevenance.cli import app as cli

DEPLOY = Path(__file__).resolve().parents[3] / "deploy"
K8S_VERSION = "1.37.0"


def _documents() -> list[tuple[str, dict[str, Any]]]:
    found = []
    for path in sorted((DEPLOY / "k8s").glob("*.yaml")):
        for document in yaml.safe_load_all(path.read_text()):
            if document:
                found.append((f"{path.name}:{document['kind']}/{document['metadata']['name']}", document))
    return found


def _containers(document: dict[str, Any]) -> list[dict[str, Any]]:
    spec = document.get("spec", {})
    template = spec.get("template") or spec.get("jobTemplate", {}).get("spec", {}).get("template", {})
    return list(template.get("spec", {}).get("containers", []))


def _assert_cli_command(argv: list[str]) -> None:
    """``argv`` starts with ``prevenance`` and names a real command with real options."""
    assert argv[0] == "prevenance", argv
    command: click.Command = typer.main.get_command(cli)
    words = argv[1:]
    while isinstance(command, click.Group) and words and not words[0].startswith("-"):
        sub = command.get_command(click.Context(command), words[0])
        assert sub is not None, f"no CLI command {words[0]!r} in {argv}"
        command, words = sub, words[1:]
    context = command.make_context("prevenance", list(words), resilient_parsing=False)
    assert context.command is command


@pytest.mark.parametrize("name,document", _documents(), ids=[name for name, _ in _documents()])
def test_kubernetes_manifests_are_valid(name: str, document: dict[str, Any]) -> None:
    kubernetes_validate.validate(document, K8S_VERSION, strict=True)
    for container in _containers(document):
        _assert_cli_command(container["command"])
        assert container.get("resources", {}).get("requests"), f"{name}: no resource requests"


def test_the_manifests_cover_api_stream_workers_and_migrations() -> None:
    kinds = {(document["kind"], document["metadata"]["name"]) for _, document in _documents()}
    assert {
        ("Deployment", "prevenance-api"),
        ("Deployment", "prevenance-stream-worker"),
        ("Job", "prevenance-migrate"),
        ("Service", "prevenance-api"),
    } <= kinds


def test_the_validator_rejects_a_broken_manifest() -> None:
    _, document = next(d for d in _documents() if d[1]["kind"] == "Deployment")
    broken = {**document, "spec": {**document["spec"], "replicas": "three"}}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, K8S_VERSION, strict=True)


def test_compose_file_is_valid_and_runs_real_commands() -> None:
    text = (DEPLOY / "compose.yaml").read_text()
    compose = compose_spec.PyCompose.from_yaml(text)
    assert {"postgres", "nats", "migrate", "api", "stream-worker"} <= set(compose.service_names())
    raw = yaml.safe_load(text)
    for name in ("migrate", "api", "stream-worker"):
        _assert_cli_command(raw["services"][name]["command"])
    assert raw["services"]["api"]["depends_on"]["migrate"]["condition"] == "service_completed_successfully"
    with pytest.raises(ValueError):
        compose_spec.PyCompose.from_yaml(text.replace("    image: postgres:16", "    imge: postgres:16"))


def _env_entries(document: dict[str, Any]) -> list[dict[str, Any]]:
    return [entry for container in _containers(document) for entry in container.get("env", [])]


def test_no_secret_is_shipped_and_the_pods_read_the_operators_secret_by_reference() -> None:
    """A shipped Secret would be applied with its placeholder; the operator creates it instead
    (`kubectl create secret generic prevenance ...`, docs/operations.md)."""
    documents = [document for _, document in _documents()]
    assert not [d for d in documents if d["kind"] == "Secret"]
    for document in documents:
        assert "PREVENANCE_SECRET_KEY" not in (document.get("data") or {}), document["metadata"]["name"]
    for name in ("prevenance-api", "prevenance-stream-worker"):
        deployment = next(d for d in documents if d["kind"] == "Deployment" and d["metadata"]["name"] == name)
        entry = next(e for e in _env_entries(deployment) if e["name"] == "PREVENANCE_SECRET_KEY")
        assert "value" not in entry
        reference = entry["valueFrom"]["secretKeyRef"]
        assert reference["key"] == "PREVENANCE_SECRET_KEY" and not reference.get("optional", False)
    assert "kubectl create secret generic prevenance" in (DEPLOY / "k8s" / "config.yaml").read_text()


def test_compose_requires_the_secret_from_the_environment_with_no_default() -> None:
    raw = yaml.safe_load((DEPLOY / "compose.yaml").read_text())
    for name in ("api", "stream-worker"):
        value = raw["services"][name]["environment"]["PREVENANCE_SECRET_KEY"]
        assert value.startswith("${PREVENANCE_SECRET_KEY:?"), value  # compose stops when it is unset


def test_no_deploy_file_carries_a_literal_secret_key() -> None:
    """Neither a placeholder (it would be used) nor a real one (it would be public)."""
    for path in sorted(DEPLOY.rglob("*")):
        if not path.is_file():
            continue
        for line in path.read_text().splitlines():
            stripped = line.strip()
            if stripped.startswith("#") or "PREVENANCE_SECRET_KEY:" not in stripped:
                continue
            value = stripped.split("PREVENANCE_SECRET_KEY:", 1)[1].strip()
            assert value.startswith("${PREVENANCE_SECRET_KEY:?"), (path, line)
