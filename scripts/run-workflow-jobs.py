#!/usr/bin/env python3
"""Run the jobs of a GitHub Actions workflow here, exactly as their ``run:`` steps are written.

    python3 scripts/run-workflow-jobs.py --list
    python3 scripts/run-workflow-jobs.py --job services --group postgres
    python3 scripts/run-workflow-jobs.py --job full-stack --input drill_rounds=3
    python3 scripts/run-workflow-jobs.py --all --dry-run

What it does, per job (and per matrix entry, in order):

* ``run:`` steps run in the repository root with the shell GitHub would use: ``bash --noprofile --norc -eo
  pipefail`` for ``shell: bash``, ``bash -e`` when no shell is named. ``uses:`` steps (checkout,
  setup-python, artifacts, caches) are skipped and listed: here the work tree, the Python and the files are
  already in place.
* ``env:`` of the workflow, the job and the step, with every ``${{ ... }}`` substituted from a small known
  set: ``matrix.*``, ``inputs.*`` (the workflow's defaults, ``--input NAME=VALUE`` overrides; ``image_set``
  defaults to ``debian`` here, the registry-free set), ``github.*`` (the values printed by ``--dry-run``),
  ``runner.*``, ``steps.<id>.outcome|conclusion|outputs.*``, ``needs.<job>.result|outputs.*``, ``env.*``;
  the operators ``! == != < <= > >= && ||`` and the functions ``always() success() failure() cancelled()
  format() contains() startsWith() endsWith() fromJSON()``. Anything else stops the run with an error:
  nothing is silently replaced.
* A job's ``outputs:`` are evaluated when it ends and read by the jobs that need it. A matrix built by an
  expression (``matrix: ${{ fromJSON(needs.<job>.outputs.<name>) }}``) is evaluated right before its job
  runs, from the jobs it needs; those jobs run first in the same invocation, also with ``--job`` and also in a
  ``--dry-run`` (announced: their outputs are what the matrix is made of, so they must really run).
* ``if:`` is honoured like GitHub does (an ``if:`` without a status function means ``success() && ...``):
  after a failing step only the steps whose condition still holds (``always()``, ``failure()``, ...) run.
  Ctrl-C cancels the job like GitHub's cancel button: the running step is stopped, ``always()`` steps run.
* ``GITHUB_STEP_SUMMARY``, ``GITHUB_ENV``, ``GITHUB_OUTPUT`` and ``GITHUB_PATH`` point at files of their
  own per step; what a step writes to the last three takes effect for the later steps, as on GitHub. The
  job's summary is printed at the end.
* Per step: its exit code and duration; at the end a table of every step. The exit code is 0 when every
  job that ran succeeded, 1 otherwise, 2 on a usage or workflow error.
"""

from __future__ import annotations

import argparse
import itertools
import json
import math
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_WORKFLOW = ROOT / ".github" / "workflows" / "nightly.yml"
# Registry-free here: the Debian image set built by scripts/setup.sh (only applied if the workflow declares it).
DEFAULT_INPUTS = {"image_set": "debian"}
STATUS_FUNCTIONS = ("always", "success", "failure", "cancelled")
SHELLS = {"bash": ["bash", "--noprofile", "--norc", "-eo", "pipefail", "-c"], None: ["bash", "-e", "-c"]}
# Job and step keys that change what a job does and that this runner does not reproduce.
UNSUPPORTED_JOB_KEYS = ("container", "services", "uses")
UNSUPPORTED_STEP_KEYS = ("shell",)

try:
    import yaml
except ModuleNotFoundError:  # system python3 without PyYAML: use the project's virtualenv, which has it
    VENV = ROOT / ".venv"
    if (VENV / "bin" / "python").is_file() and Path(sys.prefix).resolve() != VENV.resolve() \
            and not os.environ.get("RUN_WORKFLOW_REEXEC"):
        os.environ["RUN_WORKFLOW_REEXEC"] = "1"
        os.execv(str(VENV / "bin" / "python"), [str(VENV / "bin" / "python"), str(Path(__file__).resolve()),
                                                *sys.argv[1:]])
    sys.exit("error: PyYAML is needed to read the workflow; run `bash scripts/setup.sh` (it installs the dev "
             "extra into .venv) or `pip install pyyaml`")


os.environ.pop("RUN_WORKFLOW_REEXEC", None)


class WorkflowError(Exception):
    """The workflow uses something this runner does not know (an expression, a key), or bad input."""


# ------------------------------------------------------------------------------------------ expressions

_TOKEN = re.compile(r"""
    \s*(?:
      (?P<string>'(?:[^']|'')*')
    | (?P<number>-?(?:0x[0-9a-fA-F]+|\d+(?:\.\d+)?(?:[eE][-+]?\d+)?))
    | (?P<op>==|!=|<=|>=|&&|\|\||[!<>().,\[\]])
    | (?P<name>[A-Za-z_][A-Za-z0-9_-]*)
    )""", re.VERBOSE)


@dataclass(frozen=True)
class Token:
    kind: str  # string | number | op | name | end
    text: str


def tokenize(text: str) -> list[Token]:
    tokens: list[Token] = []
    pos = 0
    while pos < len(text):
        if text[pos:].strip() == "":
            break
        match = _TOKEN.match(text, pos)
        if match is None or match.lastgroup is None:
            raise WorkflowError(f"cannot read the expression {text!r} at {text[pos:]!r}")
        tokens.append(Token(match.lastgroup, match.group(match.lastgroup)))
        pos = match.end()
    tokens.append(Token("end", ""))
    return tokens


class Lenient(dict[str, Any]):
    """A context whose missing keys read as '' (as GitHub does for step outputs that were not set)."""


@dataclass
class StatusState:
    """What the status functions answer at the point of evaluation."""

    failed: bool = False
    cancelled: bool = False


class Evaluator:
    """Evaluates GitHub expressions over known contexts; anything unknown raises :class:`WorkflowError`."""

    def __init__(self, contexts: Mapping[str, Any], status: StatusState | None = None) -> None:
        self.contexts = contexts
        self.status = status or StatusState()
        self._tokens: list[Token] = []
        self._pos = 0
        self._text = ""

    # -- entry points

    def evaluate(self, text: str) -> Any:
        self._tokens = tokenize(text)
        self._pos = 0
        self._text = text
        value = self._or()
        if self._peek().kind != "end":
            raise WorkflowError(f"unexpected {self._peek().text!r} in the expression {text!r}")
        return value

    def condition(self, raw: Any) -> bool:
        """An ``if:`` value: with or without ``${{ }}``; ``success() &&`` is implied without a status function."""
        if isinstance(raw, bool):
            return raw
        text = str(raw).strip()
        whole = re.fullmatch(r"\$\{\{(.*)\}\}", text, re.DOTALL)
        if whole and "${{" not in whole.group(1):
            text = whole.group(1).strip()
        elif "${{" in text:
            raise WorkflowError(f"an if: that mixes text and ${{{{ }}}} is not supported: {raw!r}")
        names = {t.text for t in tokenize(text) if t.kind == "name"}
        if not names & set(STATUS_FUNCTIONS):
            text = f"success() && ({text})"
        return truthy(self.evaluate(text))

    def interpolate(self, value: Any) -> str:
        """A string with every ``${{ expr }}`` replaced by the expression's value."""
        text = "" if value is None else value if isinstance(value, str) else to_text(value)
        return re.sub(r"\$\{\{(.*?)\}\}", lambda m: to_text(self.evaluate(m.group(1))), text, flags=re.DOTALL)

    # -- parser / evaluator (recursive descent, evaluated as parsed; && and || short-circuit like GitHub's)

    def _peek(self) -> Token:
        return self._tokens[self._pos]

    def _take(self, text: str | None = None) -> Token:
        token = self._tokens[self._pos]
        if text is not None and token.text != text:
            raise WorkflowError(f"expected {text!r} but found {token.text or 'the end'!r} in {self._text!r}")
        self._pos += 1
        return token

    def _or(self) -> Any:
        value = self._and()
        while self._peek().text == "||":
            self._take()
            right = self._and()
            value = value if truthy(value) else right
        return value

    def _and(self) -> Any:
        value = self._compare()
        while self._peek().text == "&&":
            self._take()
            right = self._compare()
            value = right if truthy(value) else value
        return value

    def _compare(self) -> Any:
        left = self._unary()
        op = self._peek().text
        if self._peek().kind == "op" and op in ("==", "!=", "<", "<=", ">", ">="):
            self._take()
            return compare(op, left, self._unary())
        return left

    def _unary(self) -> Any:
        if self._peek().text == "!":
            self._take()
            return not truthy(self._unary())
        return self._primary()

    def _primary(self) -> Any:
        token = self._take()
        if token.kind == "string":
            return token.text[1:-1].replace("''", "'")
        if token.kind == "number":
            return float(int(token.text, 16)) if "x" in token.text.lower() else float(token.text)
        if token.text == "(":
            value = self._or()
            self._take(")")
            return value
        if token.kind != "name":
            raise WorkflowError(f"unexpected {token.text or 'end'!r} in the expression {self._text!r}")
        if token.text in ("true", "false"):
            return token.text == "true"
        if token.text == "null":
            return None
        if self._peek().text == "(":
            return self._call(token.text)
        return self._access(token.text)

    def _call(self, name: str) -> Any:
        self._take("(")
        args: list[Any] = []
        while self._peek().text != ")":
            args.append(self._or())
            if self._peek().text == ",":
                self._take()
        self._take(")")
        functions: dict[str, Callable[..., Any]] = {
            "always": lambda: True,
            "success": lambda: not self.status.failed and not self.status.cancelled,
            "failure": lambda: self.status.failed and not self.status.cancelled,
            "cancelled": lambda: self.status.cancelled,
            "format": _format,
            "contains": lambda hay, needle: (to_text(needle).lower() in to_text(hay).lower()
                                             if not isinstance(hay, list) else
                                             any(compare("==", item, needle) for item in hay)),
            "startsWith": lambda s, p: to_text(s).lower().startswith(to_text(p).lower()),
            "endsWith": lambda s, p: to_text(s).lower().endswith(to_text(p).lower()),
            "fromJSON": _from_json,
        }
        if name not in functions:
            raise WorkflowError(f"the function {name}() is not known to this runner (in {self._text!r})")
        try:
            return functions[name](*args)
        except TypeError:
            raise WorkflowError(f"{name}() called with {len(args)} argument(s) in {self._text!r}") from None

    def _access(self, root: str) -> Any:
        if root not in self.contexts:
            raise WorkflowError(f"the context {root!r} is not known to this runner (in {self._text!r}); known: "
                                f"{', '.join(sorted(self.contexts))}")
        value: Any = self.contexts[root]
        path = root
        while self._peek().text in (".", "["):
            if self._take().text == ".":
                key = self._take()
                if key.kind != "name":
                    raise WorkflowError(f"expected a property name after {path}. in {self._text!r}")
                name = key.text
            else:
                name = to_text(self._or())
                self._take("]")
            value = _member(value, name, path)
            path = f"{path}.{name}"
        return value


def _member(value: Any, name: str, path: str) -> Any:
    if isinstance(value, Lenient):
        return value.get(name, "")
    if isinstance(value, dict):
        for key in value:  # property names are case-insensitive in GitHub expressions
            if str(key).lower() == name.lower():
                return value[key]
    raise WorkflowError(f"{path}.{name} is not known to this runner (it has: "
                        f"{', '.join(sorted(map(str, value))) if isinstance(value, dict) else 'no properties'})")


def _from_json(text: Any) -> Any:
    try:
        return json.loads(to_text(text))
    except json.JSONDecodeError as exc:
        raise WorkflowError(f"fromJSON(): not JSON ({exc}): {to_text(text)[:200]!r}") from None


def _format(template: Any, *args: Any) -> str:
    def fill(match: re.Match[str]) -> str:
        if match.group(0) in ("{{", "}}"):
            return match.group(0)[0]
        index = int(match.group(1))
        if index >= len(args):
            raise WorkflowError(f"format(): no argument {index} for {template!r}")
        return to_text(args[index])
    return re.sub(r"\{\{|\}\}|\{(\d+)\}", fill, to_text(template))


def truthy(value: Any) -> bool:
    if isinstance(value, float) and math.isnan(value):
        return False
    return value not in (None, False, 0, "") if not isinstance(value, dict | list) else True


def to_number(value: Any) -> float:
    if value is None:
        return 0.0
    if isinstance(value, bool):
        return 1.0 if value else 0.0
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str):
        text = value.strip()
        if text == "":
            return 0.0
        try:
            return float(int(text, 16)) if text.lower().startswith("0x") else float(text)
        except ValueError:
            return math.nan
    return math.nan


def compare(op: str, left: Any, right: Any) -> bool:
    """GitHub's loose comparison: strings case-insensitively, mixed types as numbers."""
    if isinstance(left, str) and isinstance(right, str):
        a: Any = left.lower()
        b: Any = right.lower()
    elif type(left) is type(right) and not isinstance(left, dict | list):
        a, b = left, right
    else:
        a, b = to_number(left), to_number(right)
    if op == "==":
        return bool(a == b)
    if op == "!=":
        return bool(a != b)
    if isinstance(a, float) and isinstance(b, float) and (math.isnan(a) or math.isnan(b)):
        return False
    try:
        return bool({"<": a < b, "<=": a <= b, ">": a > b, ">=": a >= b}[op])
    except TypeError:
        return False


def to_text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return str(int(value)) if value.is_integer() else repr(value)
    if isinstance(value, dict | list):
        return json.dumps(value)
    return str(value)


# ------------------------------------------------------------------------------------------ the workflow

@dataclass(frozen=True)
class JobRun:
    """One job, or one matrix entry of a job."""

    job_id: str
    job: dict[str, Any]
    matrix: dict[str, Any]

    @property
    def label(self) -> str:
        if not self.matrix:
            return self.job_id
        return f"{self.job_id} [{', '.join(f'{k}={to_text(v)}' for k, v in self.matrix.items())}]"


def load_workflow(path: Path) -> dict[str, Any]:
    try:
        data = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise WorkflowError(f"cannot read {path}: {exc}") from None
    if not isinstance(data, dict) or not isinstance(data.get("jobs"), dict):
        raise WorkflowError(f"{path} is not a workflow (no jobs)")
    if True in data and "on" not in data:  # YAML 1.1 reads the key `on` as the boolean true
        data["on"] = data.pop(True)
    return data


def declared_inputs(workflow: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    triggers = workflow.get("on") or {}
    if not isinstance(triggers, dict):
        return {}
    dispatch = triggers.get("workflow_dispatch") or {}
    return dict((dispatch.get("inputs") or {}) if isinstance(dispatch, dict) else {})


def resolve_inputs(workflow: Mapping[str, Any], overrides: Mapping[str, str], event: str) -> dict[str, Any]:
    """The ``inputs`` context: declared defaults, then overrides, typed as declared (empty on schedule)."""
    declared = declared_inputs(workflow)
    unknown = sorted(set(overrides) - set(declared))
    if unknown:
        raise WorkflowError(f"unknown input(s) {', '.join(unknown)}; the workflow declares: "
                            f"{', '.join(declared) or 'none'}")
    if event != "workflow_dispatch":
        if overrides:
            raise WorkflowError(f"--input only applies to workflow_dispatch, not to {event}")
        return dict.fromkeys(declared)
    values: dict[str, Any] = {}
    for name, spec in declared.items():
        spec = spec or {}
        raw = overrides.get(name, spec.get("default"))
        kind = spec.get("type", "string")
        if raw is None:
            values[name] = None if kind != "boolean" else False
        elif kind == "number":
            number = to_number(raw)
            if math.isnan(number):
                raise WorkflowError(f"input {name} must be a number, not {raw!r}")
            values[name] = number
        elif kind == "boolean":
            values[name] = raw if isinstance(raw, bool) else str(raw).lower() == "true"
        else:
            values[name] = str(raw)
            if kind == "choice" and values[name] not in [str(o) for o in spec.get("options", [])]:
                raise WorkflowError(f"input {name} must be one of {spec.get('options')}, not {raw!r}")
    return values


def matrix_expression(job: Mapping[str, Any]) -> str | None:
    """The expression a job's matrix is built by (``${{ fromJSON(needs.x.outputs.y) }}``), or None."""
    matrix = (job.get("strategy") or {}).get("matrix")
    return matrix if isinstance(matrix, str) else None


def matrix_sources(job: Mapping[str, Any]) -> list[str]:
    """The jobs whose outputs a job's matrix expression reads (they must run before it)."""
    expression = matrix_expression(job) or ""
    return sorted(set(re.findall(r"needs\.([A-Za-z_][\w-]*)\.outputs", expression)))


def expand_matrix(job_id: str, job: Mapping[str, Any], value: Any = None) -> list[dict[str, Any]]:
    """The job's matrix entries: axes' product, minus ``exclude``, with ``include`` merged/added (GitHub's rules).
    A matrix built by an expression is expanded from its evaluated ``value``."""
    strategy = job.get("strategy") or {}
    matrix = strategy.get("matrix")
    if matrix is None:
        return [{}]
    if isinstance(matrix, str):
        if value is None:
            raise WorkflowError(f"job {job_id}: its matrix is built by {matrix.strip()}, which is known only once "
                                f"the jobs it needs ({', '.join(matrix_sources(job)) or 'none'}) have run")
        if not isinstance(value, dict):
            raise WorkflowError(f"job {job_id}: its matrix expression gave {type(value).__name__}, not a mapping")
        matrix = value
    if any(isinstance(v, str) and "${{" in v for v in matrix.values()):
        raise WorkflowError(f"job {job_id}: a matrix axis built by an expression is not supported")
    axes = {k: v for k, v in matrix.items() if k not in ("include", "exclude")}
    for key, values in axes.items():
        if not isinstance(values, list):
            raise WorkflowError(f"job {job_id}: matrix axis {key} is not a list")
    combos = [dict(zip(axes, values, strict=True)) for values in itertools.product(*axes.values())] if axes else []
    for rule in matrix.get("exclude") or []:
        combos = [c for c in combos if not all(c.get(k) == v for k, v in rule.items())]
    extra: list[dict[str, Any]] = []
    for entry in matrix.get("include") or []:
        matched = False
        for combo in combos:
            if all(combo[k] == v for k, v in entry.items() if k in axes):
                matched = True
                for k, v in entry.items():
                    combo.setdefault(k, v)
        if not matched:
            extra.append(dict(entry))
    return combos + extra


def job_order(workflow: Mapping[str, Any]) -> list[str]:
    """Job ids in an order that respects ``needs`` (file order otherwise)."""
    jobs: dict[str, Any] = workflow["jobs"]
    done: list[str] = []
    visiting: set[str] = set()

    def visit(job_id: str) -> None:
        if job_id in done:
            return
        if job_id in visiting:
            raise WorkflowError(f"jobs depend on each other in a cycle through {job_id}")
        visiting.add(job_id)
        for need in needs_of(jobs[job_id]):
            if need not in jobs:
                raise WorkflowError(f"job {job_id} needs {need}, which the workflow does not have")
            visit(need)
        visiting.discard(job_id)
        done.append(job_id)

    for job_id in jobs:
        visit(job_id)
    return done


def needs_of(job: Mapping[str, Any]) -> list[str]:
    needs = job.get("needs") or []
    return [needs] if isinstance(needs, str) else list(needs)


def job_runs(workflow: Mapping[str, Any], job_ids: Sequence[str],
             matrix_filter: Mapping[str, str], matrix_value: Any = None) -> list[JobRun]:
    runs: list[JobRun] = []
    for job_id in job_ids:
        job = workflow["jobs"][job_id]
        for key in UNSUPPORTED_JOB_KEYS:
            if key in job:
                raise WorkflowError(f"job {job_id}: `{key}:` is not supported by this runner")
        entries = expand_matrix(job_id, job, matrix_value)
        if matrix_filter:
            if entries == [{}]:
                raise WorkflowError(f"job {job_id} has no matrix, so --group/--matrix do not apply")
            entries = [e for e in entries if all(to_text(e.get(k)) == v for k, v in matrix_filter.items())]
            if not entries:
                choices = "; ".join(", ".join(f"{k}={to_text(v)}" for k, v in e.items())
                                    for e in expand_matrix(job_id, job, matrix_value))
                raise WorkflowError(f"no matrix entry of {job_id} matches {dict(matrix_filter)}; entries: {choices}")
        runs += [JobRun(job_id, job, entry) for entry in entries]
    return runs


def git(*args: str) -> str:
    proc = subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, check=False)
    return proc.stdout.strip() if proc.returncode == 0 else ""


def github_context(event: str, default_branch: str) -> dict[str, Any]:
    """The ``github`` context this runner defines (printed by --dry-run)."""
    branch = git("rev-parse", "--abbrev-ref", "HEAD") or "main"
    run_id = str(int(time.time()))
    return {
        "event_name": event,
        "ref": f"refs/heads/{branch}",
        "ref_name": branch,
        "ref_type": "branch",
        "sha": git("rev-parse", "HEAD") or "0" * 40,
        "repository": f"local/{ROOT.name}",
        "repository_owner": "local",
        "workspace": str(ROOT),
        "run_id": run_id,
        "run_number": "1",
        "run_attempt": "1",
        "actor": os.environ.get("USER", "local"),
        "server_url": "https://github.com",
        "event": {"repository": {"default_branch": default_branch}},
    }


# ------------------------------------------------------------------------------------------ running

@dataclass
class StepResult:
    job: str
    name: str
    status: str  # success | failure | skipped | cancelled | uses (skipped here: an action)
    exit_code: int | None = None
    seconds: float = 0.0
    note: str = ""


@dataclass(frozen=True)
class PlannedStep:
    """A ``run:`` step as it will be (or was) executed: expressions substituted, env merged."""

    job_id: str
    label: str
    matrix: dict[str, Any]
    name: str
    step: dict[str, Any]
    env: dict[str, str]
    script: str
    shell: list[str]


@dataclass
class JobResult:
    label: str
    job_id: str
    result: str  # success | failure | cancelled | skipped
    seconds: float
    steps: list[StepResult] = field(default_factory=list)
    summary: str = ""
    outputs: dict[str, str] = field(default_factory=dict)


def step_name(step: Mapping[str, Any], index: int) -> str:
    if step.get("name"):
        return str(step["name"])
    if step.get("uses"):
        return f"uses {step['uses']}"
    first = str(step.get("run", "")).strip().splitlines()
    return f"run {first[0][:60]}" if first else f"step {index + 1}"


def read_kv_file(path: Path) -> dict[str, str]:
    """``NAME=value`` and ``NAME<<DELIM`` ... ``DELIM`` lines, as written to GITHUB_ENV / GITHUB_OUTPUT."""
    values: dict[str, str] = {}
    lines = path.read_text().splitlines() if path.is_file() else []
    i = 0
    while i < len(lines):
        line = lines[i]
        i += 1
        if not line.strip():
            continue
        if "<<" in line and ("=" not in line or line.index("<<") < line.index("=")):
            name, delim = line.split("<<", 1)
            body: list[str] = []
            while i < len(lines) and lines[i] != delim:
                body.append(lines[i])
                i += 1
            if i >= len(lines):
                raise WorkflowError(f"{path.name}: no closing {delim!r} for {name}")
            i += 1
            values[name] = "\n".join(body)
        elif "=" in line:
            name, value = line.split("=", 1)
            values[name] = value
        else:
            raise WorkflowError(f"{path.name}: cannot read the line {line!r}")
    return values


class Runner:
    def __init__(self, workflow: dict[str, Any], inputs: dict[str, Any], github: dict[str, Any],
                 needs_override: Mapping[str, str], dry_run: bool, out: Callable[[str], None] = print) -> None:
        self.workflow = workflow
        self.inputs = inputs
        self.github = github
        self.needs_override = dict(needs_override)
        self.dry_run = dry_run
        self.out = out
        self.results: list[JobResult] = []
        self.planned: list[PlannedStep] = []
        self.temp = Path(tempfile.mkdtemp(prefix="run-workflow-"))
        self.interrupted = False

    # -- contexts

    def _needs(self, job: Mapping[str, Any]) -> dict[str, Any]:
        needs: dict[str, Any] = {}
        for need in needs_of(job):
            runs = [r for r in self.results if r.job_id == need]
            outputs = Lenient({k: v for r in runs for k, v in r.outputs.items()})
            if runs:
                results = {r.result for r in runs}
                result = ("failure" if "failure" in results else "cancelled" if "cancelled" in results
                          else "success" if "success" in results else "skipped")
            elif need in self.needs_override:
                result = self.needs_override[need]
            elif self.dry_run:
                result = "success"  # a dry run assumes every job succeeds
            else:
                continue  # not known: an expression that reads it stops with an error
            needs[need] = {"result": result, "outputs": outputs}
        return needs

    def _contexts(self, run: JobRun, env: Mapping[str, str], steps: Mapping[str, Any],
                  needs: Mapping[str, Any]) -> dict[str, Any]:
        return {"github": self.github, "inputs": self.inputs, "matrix": run.matrix,
                "runner": {"os": "Linux", "arch": "X64", "name": "local", "temp": str(self.temp),
                           "environment": "self-hosted"},
                "env": dict(env), "steps": dict(steps), "needs": dict(needs),
                "strategy": {"fail-fast": (run.job.get("strategy") or {}).get("fail-fast", True),
                             "job-index": 0, "job-total": 1}}

    def _env_block(self, block: Any, evaluator: Evaluator, where: str) -> dict[str, str]:
        if block is None:
            return {}
        if not isinstance(block, dict):
            raise WorkflowError(f"{where}: env is not a mapping")
        return {str(k): evaluator.interpolate(v) for k, v in block.items()}

    # -- jobs

    def run_jobs(self, job_ids: Sequence[str], matrix_filter: Mapping[str, str]) -> None:
        """Run the jobs in order, each matrix entry in turn; a matrix built by an expression is evaluated right
        before its job, from the jobs it needs (run first here, see the module docstring)."""
        jobs = self.workflow["jobs"]
        sources = {source: job_id for job_id in jobs for source in matrix_sources(jobs[job_id])}
        for job_id in job_ids:
            job = jobs[job_id]
            if job_id in sources and not any(r.job_id == job_id for r in self.results):
                self._run_source(job_id, sources[job_id])
                continue
            value = None
            expression = matrix_expression(job)
            if expression is not None:
                for source in matrix_sources(job):
                    if not any(r.job_id == source for r in self.results):
                        self._run_source(source, job_id)
                needs = self._needs(job)
                value = Evaluator({"needs": needs, "inputs": self.inputs, "github": self.github}).evaluate(
                    expression.strip().removeprefix("${{").removesuffix("}}"))
            for run in job_runs(self.workflow, [job_id], matrix_filter, value):
                self.run_job(run)
                if self.interrupted:
                    self.out("interrupted: not starting further jobs")
                    return

    def _run_source(self, source: str, job_id: str) -> None:
        """Run a job whose outputs make another job's matrix: for real, also in a dry run."""
        self.out(f"\njob {source} runs" + (" (for real, also in this dry run)" if self.dry_run else "")
                 + f": the matrix of {job_id} is built from its outputs")
        for run in job_runs(self.workflow, [source], {}):
            self.run_job(run, dry_run=False)

    def run_job(self, run: JobRun, dry_run: bool | None = None) -> JobResult:
        saved = self.dry_run
        if dry_run is not None:
            self.dry_run = dry_run
        try:
            return self._run_job(run)
        finally:
            self.dry_run = saved

    def _run_job(self, run: JobRun) -> JobResult:
        started = time.monotonic()
        job = run.job
        needs = self._needs(job)
        unknown = [n for n in needs_of(job) if n not in needs]
        if unknown:
            raise WorkflowError(f"job {run.job_id} needs {', '.join(unknown)}: run them in the same invocation "
                                f"(--all) or say how they ended with --needs JOB=RESULT")
        # At job level success() means: every job it needs succeeded; an if: without a status function
        # implies success(), so a job is skipped after a failed (or skipped) need unless it says always().
        status = StatusState(failed=any(n["result"] != "success" for n in needs.values()))
        base = Evaluator(self._contexts(run, {}, {}, needs), status)
        # The job's display name (`name:`, e.g. "services (postgres)"), else its id and matrix entry.
        label = base.interpolate(job["name"]) if job.get("name") else run.label
        self.out(f"\n=== job {label}")
        if not base.condition(job.get("if", "success()")):
            self.out("    skipped: its if: is false" if "if" in job else "    skipped: a job it needs did not succeed")
            result = JobResult(label, run.job_id, "skipped", 0.0)
            self.results.append(result)
            return result
        status = StatusState()  # step-level status functions look at this job's steps only
        env = self._env_block(self.workflow.get("env"), base, "workflow")
        env.update(self._env_block(job.get("env"), Evaluator(self._contexts(run, env, {}, needs), status), "job"))
        defaults = {**((self.workflow.get("defaults") or {}).get("run") or {}),
                    **((job.get("defaults") or {}).get("run") or {})}
        job_timeout = float(job.get("timeout-minutes", 360)) * 60
        deadline = started + job_timeout
        steps_ctx: dict[str, Any] = {}
        job_dir = Path(tempfile.mkdtemp(prefix=f"{run.job_id}-", dir=self.temp))
        summary_parts: list[str] = []
        extra_path: list[str] = []
        results: list[StepResult] = []
        if self.dry_run:
            for key, value in env.items():
                shown = value if "\n" not in value else value.splitlines()[0] + " ... (multi-line)"
                self.out(f"    env {key}={shown}")
        for index, step in enumerate(job.get("steps") or []):
            name = step_name(step, index)
            for key in UNSUPPORTED_STEP_KEYS:
                if key in step and step[key] != "bash":
                    raise WorkflowError(f"{run.job_id} / {name}: `{key}: {step[key]}` is not supported")
            step_env = {**env, **self._env_block(step.get("env"), Evaluator(
                self._contexts(run, env, steps_ctx, needs), status), f"{run.job_id} / {name}")}
            if time.monotonic() > deadline and not self.dry_run:
                status.cancelled = True  # the job ran out of time: like GitHub, only always() steps still run
            evaluator = Evaluator(self._contexts(run, step_env, steps_ctx, needs), status)
            runs = evaluator.condition(step.get("if", "success()"))
            step_id = step.get("id")
            if "uses" in step:
                results.append(StepResult(label, name, "uses", None, 0.0,
                                          f"{step['uses']}: skipped here" + ("" if runs else " (its if: is false)")))
                self.out(f"--- {name}: skipped here ({step['uses']})")
                if step_id:
                    steps_ctx[step_id] = {"outcome": "skipped", "conclusion": "skipped", "outputs": Lenient()}
                continue
            if "run" not in step:
                raise WorkflowError(f"{run.job_id} / {name}: a step needs `run:` or `uses:`")
            if not runs:
                results.append(StepResult(label, name, "skipped", None, 0.0, "if: is false"))
                self.out(f"--- {name}: skipped (if: is false)")
                if step_id:
                    steps_ctx[step_id] = {"outcome": "skipped", "conclusion": "skipped", "outputs": Lenient()}
                continue
            script = evaluator.interpolate(step["run"])
            shell = step.get("shell", defaults.get("shell"))
            if shell not in SHELLS:
                raise WorkflowError(f"{run.job_id} / {name}: shell {shell!r} is not supported (bash only)")
            workdir = ROOT / str(step.get("working-directory", defaults.get("working-directory", ".")))
            self.planned.append(PlannedStep(run.job_id, label, dict(run.matrix), name, dict(step), dict(step_env),
                                            script, SHELLS[shell]))
            if self.dry_run:
                self.out(f"--- {name}")
                for key in step.get("env") or {}:
                    self.out(f"    env {key}={step_env[key]}")
                self.out("    shell: " + " ".join(SHELLS[shell]) + " SCRIPT, where SCRIPT is:")
                for line in script.rstrip("\n").splitlines():
                    self.out(f"    | {line}")
                results.append(StepResult(label, name, "would run", None, 0.0, "dry run"))
                if step_id:
                    steps_ctx[step_id] = {"outcome": "success", "conclusion": "success", "outputs": Lenient()}
                continue
            files = {k: job_dir / f"{index:02d}-{k.lower()}" for k in
                     ("GITHUB_STEP_SUMMARY", "GITHUB_ENV", "GITHUB_OUTPUT", "GITHUB_PATH")}
            for path in files.values():
                path.write_text("")
            process_env = {**os.environ, **step_env, "CI": "true", "GITHUB_WORKSPACE": str(ROOT),
                           "RUNNER_TEMP": str(self.temp), **{k: str(v) for k, v in files.items()}}
            if extra_path:
                process_env["PATH"] = os.pathsep.join([*reversed(extra_path), process_env.get("PATH", "")])
            step_timeout = float(step.get("timeout-minutes", job_timeout / 60)) * 60
            budget = max(1.0, min(step_timeout, deadline - time.monotonic()))
            self.out(f"--- {name}")
            for line in script.rstrip("\n").splitlines():  # like GitHub's "Run ..." header
                self.out(f"    $ {line}")
            code, seconds, note = self._execute([*SHELLS[shell], script], workdir, process_env, budget)
            if note == "cancelled":
                status.cancelled = True
            outcome = "success" if code == 0 else ("cancelled" if note == "cancelled" else "failure")
            conclusion = "success" if outcome == "failure" and truthy(step.get("continue-on-error")) else outcome
            if conclusion == "failure":
                status.failed = True
            env.update(read_kv_file(files["GITHUB_ENV"]))
            extra_path += [p for p in files["GITHUB_PATH"].read_text().splitlines() if p.strip()]
            summary_parts.append(files["GITHUB_STEP_SUMMARY"].read_text())
            if step_id:
                steps_ctx[step_id] = {"outcome": outcome, "conclusion": conclusion,
                                      "outputs": Lenient(read_kv_file(files["GITHUB_OUTPUT"]))}
            results.append(StepResult(label, name, outcome, code, seconds, note))
            self.out(f"--- {name}: {outcome}, exit {code}, {seconds:.1f} s" + (f" ({note})" if note else ""))
        verdict = "cancelled" if status.cancelled else "failure" if status.failed else "success"
        outputs: dict[str, str] = {}
        if job.get("outputs") and not self.dry_run:
            final = Evaluator(self._contexts(run, env, steps_ctx, needs), status)
            outputs = {str(k): final.interpolate(v) for k, v in job["outputs"].items()}
        result = JobResult(label, run.job_id, verdict, time.monotonic() - started, results,
                           "".join(summary_parts), outputs)
        self.results.append(result)
        return result

    def _execute(self, argv: list[str], cwd: Path, env: dict[str, str], budget: float) -> tuple[int, float, str]:
        """Run one step in its own process group; on timeout or Ctrl-C stop the whole group."""
        started = time.monotonic()
        proc = subprocess.Popen(argv, cwd=cwd, env=env, stdin=subprocess.DEVNULL, start_new_session=True)
        note = ""
        try:
            code = proc.wait(timeout=budget)
        except subprocess.TimeoutExpired:
            note = f"timed out after {budget / 60:.1f} min"
            code = self._stop(proc)
        except KeyboardInterrupt:
            self.interrupted = True
            note = "cancelled"
            code = self._stop(proc)
        return code, time.monotonic() - started, note

    @staticmethod
    def _stop(proc: subprocess.Popen[bytes]) -> int:
        for sig, wait in ((signal.SIGINT, 10.0), (signal.SIGTERM, 10.0), (signal.SIGKILL, 5.0)):
            try:
                os.killpg(proc.pid, sig)
            except ProcessLookupError:
                break
            try:
                proc.wait(timeout=wait)
                break
            except subprocess.TimeoutExpired:
                continue
        return proc.wait()


# ------------------------------------------------------------------------------------------ output

def format_table(results: Sequence[JobResult]) -> list[str]:
    rows = [("job", "step", "status", "exit", "seconds")]
    for job in results:
        for step in job.steps:
            rows.append((job.label, step.name[:70], step.status if step.status != "uses" else "skipped (uses)",
                         "-" if step.exit_code is None else str(step.exit_code),
                         f"{step.seconds:.1f}" if step.status not in ("uses", "skipped") else "-"))
        rows.append((job.label, "== job result", job.result, "-", f"{job.seconds:.1f}"))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = []
    for n, row in enumerate(rows):
        lines.append("  ".join(c.rjust(w) if i >= 3 else c.ljust(w) for i, (c, w) in
                               enumerate(zip(row, widths, strict=True))).rstrip())
        if n == 0:
            lines.append("  ".join("-" * w for w in widths))
    return lines


def list_jobs(workflow: Mapping[str, Any], out: Callable[[str], None] = print) -> None:
    for job_id in job_order(workflow):
        job = workflow["jobs"][job_id]
        needs = needs_of(job)
        out(f"{job_id}" + (f"  (needs: {', '.join(needs)})" if needs else ""))
        expression = matrix_expression(job)
        if expression is not None:
            out(f"  matrix: built by {expression.strip()} when {', '.join(matrix_sources(job))} has run")
        for entry in [] if expression is not None else expand_matrix(job_id, job):
            if entry:
                out("  matrix: " + ", ".join(f"{k}={to_text(v)}" for k, v in entry.items()))
        for index, step in enumerate(job.get("steps") or []):
            kind = "uses (skipped here)" if "uses" in step else "run"
            out(f"    {index + 1:2d}. [{kind}] {step_name(step, index)}")


# ------------------------------------------------------------------------------------------ main

def _pairs(values: Sequence[str], what: str) -> dict[str, str]:
    pairs: dict[str, str] = {}
    for item in values:
        if "=" not in item:
            raise WorkflowError(f"{what} wants NAME=VALUE, not {item!r}")
        key, value = item.split("=", 1)
        pairs[key.strip()] = value
    return pairs


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="run-workflow-jobs.py", description="Run a workflow's jobs here, exactly as their run: steps are "
        "written (uses: steps are skipped).", formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workflow", type=Path, default=DEFAULT_WORKFLOW, help="default: %(default)s")
    what = parser.add_mutually_exclusive_group(required=True)
    what.add_argument("--job", help="run this job (every matrix entry unless --group/--matrix narrows it)")
    what.add_argument("--all", action="store_true", help="run every job, in needs order")
    what.add_argument("--list", action="store_true", help="list jobs, matrix entries and steps")
    parser.add_argument("--group", help="the matrix entry whose `group` is this (same as --matrix group=...)")
    parser.add_argument("--matrix", action="append", default=[], metavar="KEY=VALUE",
                        help="keep the matrix entries with this value (repeatable)")
    parser.add_argument("--input", action="append", default=[], metavar="NAME=VALUE",
                        help=f"workflow_dispatch input (repeatable); defaults here: "
                             f"{', '.join(f'{k}={v}' for k, v in DEFAULT_INPUTS.items())}")
    parser.add_argument("--event", choices=["workflow_dispatch", "schedule"], default="workflow_dispatch",
                        help="github.event_name; schedule runs have no inputs (default: %(default)s)")
    parser.add_argument("--default-branch", default="main",
                        help="github.event.repository.default_branch (default: %(default)s)")
    parser.add_argument("--needs", action="append", default=[], metavar="JOB=RESULT",
                        help="needs.<JOB>.result for a job not run in this invocation (success, failure, ...)")
    parser.add_argument("--dry-run", action="store_true",
                        help="print what would run (env, conditions, scripts), assuming every step succeeds")
    return parser


def main(argv: Sequence[str] | None = None, out: Callable[[str], None] = print) -> int:
    args = build_parser().parse_args(argv)
    try:
        workflow = load_workflow(args.workflow)
        if args.list:
            list_jobs(workflow, out)
            return 0
        overrides = _pairs(args.input, "--input")
        declared = declared_inputs(workflow)
        if args.event == "workflow_dispatch":
            overrides = {**{k: v for k, v in DEFAULT_INPUTS.items() if k in declared}, **overrides}
        inputs = resolve_inputs(workflow, overrides, args.event)
        matrix_filter = _pairs(args.matrix, "--matrix")
        if args.group is not None:
            matrix_filter["group"] = args.group
        if args.job is not None and args.job not in workflow["jobs"]:
            raise WorkflowError(f"no job {args.job!r}; jobs: {', '.join(workflow['jobs'])}")
        if args.all and matrix_filter:
            raise WorkflowError("--group/--matrix go with --job")
        job_ids = [args.job] if args.job else job_order(workflow)
        if not any(matrix_expression(workflow["jobs"][j]) for j in job_ids):
            job_runs(workflow, job_ids, matrix_filter)  # a plain matrix is checked before anything runs
        github = github_context(args.event, args.default_branch)
        runner = Runner(workflow, inputs, github, _pairs(args.needs, "--needs"), args.dry_run, out)
        out(f"workflow {args.workflow}, event {args.event}, inputs "
            + (", ".join(f"{k}={to_text(v)}" for k, v in inputs.items()) or "none"))
        if args.dry_run:
            out("dry run: nothing is executed; every step is assumed to succeed and step outputs are empty")
            out("github: " + ", ".join(f"{k}={v}" for k, v in github.items() if k != "event")
                + f", event.repository.default_branch={args.default_branch}")
        runner.run_jobs(job_ids, matrix_filter)
    except WorkflowError as exc:
        sys.stderr.write(f"error: {exc}\n")
        return 2
    except KeyboardInterrupt:
        sys.stderr.write("interrupted\n")
        return 130
    out("")
    for line in format_table(runner.results):
        out(line)
    for job in runner.results:
        if job.summary.strip():
            out(f"\n----- GITHUB_STEP_SUMMARY of {job.label} -----")
            out(job.summary.rstrip("\n"))
    failed = [j.label for j in runner.results if j.result not in ("success", "skipped")]
    out(f"\n{len(runner.results)} job run(s): " + (f"FAILED: {', '.join(failed)}" if failed else "all succeeded"))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
