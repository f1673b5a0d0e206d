"""The Dockerfile of a model image: rendered from data, and checked by a small linter.

:func:`render_dockerfile` writes a two-stage build: ``build`` installs
``forgeml[serve]`` into a virtual environment (from wheels placed in ``wheels/``, else
from the package index); the final stage is the same slim Python base with the venv, the
model folder and ``libgomp1`` (LightGBM's OpenMP runtime) only, running as a numeric
non-root user. Exec-form arrays are written with :func:`json.dumps`, so no value is ever
interpreted by a shell.

:func:`lint_dockerfile` parses instructions (:func:`parse_dockerfile`) and returns the
problems it finds, for this file, the reference ``deploy/Dockerfile`` or any other:

>>> for problem in lint_dockerfile("FROM python:latest\\nCMD python app.py\\n"):
...     print(problem)
line 1: FROM python:latest: pin the base image by a version tag or digest, not latest
a multi-stage build needs at least 2 FROM instructions (found 1)
line 1: the build stage needs a name (FROM ... AS build) for COPY --from= to use
line 2: CMD must use the exec form (a JSON array), so signals reach the server
the final stage copies nothing from an earlier stage (COPY --from=...)
the final stage has no USER: the image would run as root
the final stage does not EXPOSE 8080
the final stage does not set ENV PYTHONDONTWRITEBYTECODE
the final stage does not set ENV PYTHONUNBUFFERED
"""

from __future__ import annotations

import json
import re
import shlex
from dataclasses import dataclass, field

from forgeml.deploy import contract

__all__ = ["Instruction", "lint_dockerfile", "parse_dockerfile", "render_dockerfile"]

_BUILD_PACKAGES = {"build-essential", "gcc", "g++", "make", "cmake", "git", "clang"}
_SECRET_NAME = re.compile(r"(?i)(password|passwd|secret|token|api_?key|admin_?key|private_?key)$")
_VAR = re.compile(r"\$(?:\{([A-Za-z_][A-Za-z0-9_]*)(?::-[^}]*)?\}|([A-Za-z_][A-Za-z0-9_]*))")


@dataclass(frozen=True)
class Instruction:
    """One instruction: its first line, keyword (upper case), ``--flags`` and arguments."""

    line: int
    keyword: str
    args: str
    flags: dict[str, str] = field(default_factory=dict)

    @property
    def exec_form(self) -> list[str] | None:
        """The arguments as a JSON array of strings (exec form), else ``None``."""
        if not self.args.startswith("["):
            return None
        try:
            value = json.loads(self.args)
        except ValueError:
            return None
        ok = isinstance(value, list) and all(isinstance(v, str) for v in value)
        return value if ok else None


def parse_dockerfile(text: str) -> list[Instruction]:
    """Instructions of a Dockerfile: comments and blank lines dropped, ``\\`` continuations
    joined, leading ``--flag=value`` options split off.

    >>> [(i.line, i.keyword, i.flags, i.args) for i in parse_dockerfile(
    ...     "# syntax=docker/dockerfile:1\\nFROM a:1 AS b\\nCOPY --from=b \\\\\\n  /x /y\\n")]
    [(2, 'FROM', {}, 'a:1 AS b'), (3, 'COPY', {'from': 'b'}, '/x /y')]
    """
    instructions = []
    pending: list[str] = []
    start = 0
    for number, raw in enumerate(text.splitlines(), start=1):
        stripped = raw.strip()
        if not pending and (not stripped or stripped.startswith("#")):
            continue
        if pending and stripped.startswith("#"):
            continue  # comment lines inside a continuation are dropped by docker too
        if not pending:
            start = number
        if stripped.endswith("\\"):
            pending.append(stripped[:-1].strip())
            continue
        pending.append(stripped)
        instructions.append(_instruction(start, " ".join(p for p in pending if p)))
        pending = []
    if pending:
        instructions.append(_instruction(start, " ".join(p for p in pending if p)))
    return instructions


def _instruction(line: int, text: str) -> Instruction:
    keyword, _, rest = text.partition(" ")
    rest = rest.strip()
    flags: dict[str, str] = {}
    while rest.startswith("--"):
        token, _, rest = rest.partition(" ")
        name, _, value = token[2:].partition("=")
        flags[name.lower()] = value
        rest = rest.strip()
    return Instruction(line, keyword.upper(), rest, flags)


def _env_pairs(args: str) -> dict[str, str]:
    """``ENV``/``ARG``/``LABEL`` arguments as ``{name: value}`` (``K=V ...`` or ``K V``)."""
    try:
        tokens = shlex.split(args)
    except ValueError:
        return {}
    if tokens and "=" not in tokens[0]:
        return {tokens[0]: " ".join(tokens[1:])}
    return dict(t.partition("=")[::2] for t in tokens)


def _expand(text: str, variables: dict[str, str]) -> str:
    return _VAR.sub(lambda m: variables.get(m.group(1) or m.group(2), m.group(0)), text)


def _stages(instructions: list[Instruction]) -> list[list[Instruction]]:
    stages: list[list[Instruction]] = []
    for inst in instructions:
        if inst.keyword == "FROM":
            stages.append([])
        if stages:
            stages[-1].append(inst)
    return stages


def _image_problems(inst: Instruction, image: str, names: set[str]) -> list[str]:
    if image == "scratch" or image.lower() in names:
        return []
    if "$" in image:
        return [f"line {inst.line}: FROM {image}: the base image must not depend on unset ARGs"]
    last = image.rsplit("/", 1)[-1]
    tag = last.split("@", 1)[0].partition(":")[2]
    if "@" not in last and tag in ("", "latest"):
        return [
            f"line {inst.line}: FROM {image}: pin the base image by a version tag or digest, "
            "not latest"
        ]
    return []


def lint_dockerfile(text: str) -> list[str]:
    """Problems in a Dockerfile (``[]`` when none): multi-stage with a named build stage;
    base images pinned (no ``latest``, no implicit tag); the final stage copies from an
    earlier stage, runs as a numeric non-root ``USER``, ``EXPOSE``\\ s 8080, sets
    ``PYTHONDONTWRITEBYTECODE`` and ``PYTHONUNBUFFERED`` and installs no build tools;
    ``CMD``/``ENTRYPOINT`` in exec form; no ``ADD`` of a URL; no secret-looking ``ARG`` or
    ``ENV``."""
    instructions = parse_dockerfile(text)
    problems: list[str] = []
    global_args: dict[str, str] = {}
    for inst in instructions:
        if inst.keyword == "FROM":
            break
        if inst.keyword == "ARG":
            global_args |= _env_pairs(inst.args)
    stages = _stages(instructions)
    names: set[str] = set()
    for stage in stages:
        head = stage[0]
        words = _expand(head.args, global_args).split()
        image = words[0] if words else ""
        problems += _image_problems(head, image, names)
        if len(words) >= 3 and words[1].lower() == "as":
            names.add(words[2].lower())
    if len(stages) < 2:
        problems.append(
            f"a multi-stage build needs at least 2 FROM instructions (found {len(stages)})"
        )
    if stages and not re.search(r"(?i)\sas\s+\S+$", stages[0][0].args):
        problems.append(
            f"line {stages[0][0].line}: the build stage needs a name (FROM ... AS build) "
            "for COPY --from= to use"
        )
    for inst in instructions:
        problems += _instruction_problems(inst)
    if stages:
        problems += _final_stage_problems(stages[-1])
    return problems


def _instruction_problems(inst: Instruction) -> list[str]:
    problems = []
    if inst.keyword == "ADD" and re.search(r"(?i)(^|\s)(https?|ftp|git)(://|@)|git@", inst.args):
        problems.append(
            f"line {inst.line}: ADD of a URL: download in a build stage with a checksum instead"
        )
    if inst.keyword in ("CMD", "ENTRYPOINT") and inst.exec_form is None:
        problems.append(
            f"line {inst.line}: {inst.keyword} must use the exec form (a JSON array), "
            "so signals reach the server"
        )
    if inst.keyword in ("ARG", "ENV"):
        for name, value in _env_pairs(inst.args).items():
            if _SECRET_NAME.search(name) and value:
                problems.append(
                    f"line {inst.line}: {inst.keyword} {name} looks like a secret baked into "
                    "the image; mount it at run time instead"
                )
    return problems


def _final_stage_problems(stage: list[Instruction]) -> list[str]:
    problems = []
    if not any(i.keyword == "COPY" and i.flags.get("from") for i in stage):
        problems.append("the final stage copies nothing from an earlier stage (COPY --from=...)")
    users = [i for i in stage if i.keyword == "USER"]
    if not users:
        problems.append("the final stage has no USER: the image would run as root")
    else:
        user = users[-1].args.split(":", 1)[0].strip()
        if not user.isdigit() or int(user) == 0:
            problems.append(
                f"line {users[-1].line}: USER {users[-1].args}: use a numeric, non-zero UID "
                "(Kubernetes can only verify runAsNonRoot for a numeric user)"
            )
    exposed = {p.split("/")[0] for i in stage if i.keyword == "EXPOSE" for p in i.args.split()}
    if str(contract.PORT) not in exposed:
        problems.append(f"the final stage does not EXPOSE {contract.PORT}")
    env: dict[str, str] = {}
    for inst in stage:
        if inst.keyword == "ENV":
            env |= _env_pairs(inst.args)
    for name in ("PYTHONDONTWRITEBYTECODE", "PYTHONUNBUFFERED"):
        if env.get(name, "") in ("", "0"):
            problems.append(f"the final stage does not set ENV {name}")
    for inst in stage:
        words = set(re.split(r"[\s;&|]+", inst.args)) if inst.keyword == "RUN" else set()
        tools = sorted(words & _BUILD_PACKAGES) if {"install", "add"} & words else []
        if tools:
            problems.append(
                f"line {inst.line}: the final stage installs build tools ({', '.join(tools)}); "
                "build in the first stage"
            )
    return problems


def render_dockerfile(
    model: str, *, forgeml_version: str, labels: dict[str, str], model_dir: str
) -> str:
    """The Dockerfile of an image serving the model folder ``model_dir`` (relative to the
    build context) as ``/models/<model>``, with ``forgeml[serve]==forgeml_version``.

    >>> text = render_dockerfile("churn", forgeml_version="0.1.0", labels={}, model_dir="model/churn")
    >>> lint_dockerfile(text)
    []
    """
    target = contract.model_path(model)
    uid = contract.RUNTIME_UID
    requirement = f"forgeml[serve]=={forgeml_version}"
    probe = (
        "import sys, urllib.request; "
        f"sys.exit(urllib.request.urlopen('http://127.0.0.1:{contract.PORT}"
        f"{contract.READY_PATH}', timeout=2).status != 200)"
    )
    verify = (
        "import sys; from forgeml.models.bundle import load_bundle; "
        "from pathlib import Path; load_bundle(Path(sys.argv[1]))"
    )
    label_args = " ".join(f"{k}={json.dumps(v)}" for k, v in sorted(labels.items()))
    lines = [
        "# syntax=docker/dockerfile:1",
        f"# Rendered by forgeml {forgeml_version} (forgeml deploy k8s). Build context: this folder.",
        "",
        "# -- build: forgeml[serve] into a virtual environment -------------------------------",
        f"FROM {contract.BASE_IMAGE} AS build",
        "ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1 PYTHONDONTWRITEBYTECODE=1",
        "# A forgeml wheel placed in wheels/ is used first; otherwise pip asks the index.",
        "COPY wheels/ /wheels/",
        "RUN python -m venv /opt/venv \\",
        f"    && /opt/venv/bin/pip install --find-links /wheels {shlex.quote(requirement)}",
        "",
        "# -- runtime: the venv, the model, a non-root user; no compilers, no pip cache -----",
        f"FROM {contract.BASE_IMAGE} AS runtime",
        "# libgomp1: the OpenMP runtime LightGBM's wheel links against (not in slim images).",
        "RUN apt-get update \\",
        "    && apt-get install -y --no-install-recommends libgomp1 \\",
        "    && rm -rf /var/lib/apt/lists/* \\",
        f"    && groupadd --system --gid {uid} forgeml \\",
        f"    && useradd --system --uid {uid} --gid {uid} --no-create-home \\",
        "       --home-dir /nonexistent --shell /usr/sbin/nologin forgeml",
        "ENV PATH=/opt/venv/bin:$PATH \\",
        "    PYTHONDONTWRITEBYTECODE=1 \\",
        "    PYTHONUNBUFFERED=1 \\",
        "    MPLCONFIGDIR=/tmp/matplotlib \\",
        "    XDG_CACHE_HOME=/tmp/.cache",
        "COPY --from=build /opt/venv /opt/venv",
        "# The model is owned by root and read-only to the server.",
        f"COPY {model_dir}/ {target}/",
        "# Fail the build, not the rollout, if the model is missing or a sha256 differs.",
        f"RUN {json.dumps(['python', '-c', verify, target])}",
    ]
    if label_args:
        lines.append(f"LABEL {label_args}")
    lines += [
        f"USER {uid}:{uid}",
        f"EXPOSE {contract.PORT}",
        "# For docker run / compose; Kubernetes ignores HEALTHCHECK and uses its probes.",
        "HEALTHCHECK --interval=30s --timeout=3s --start-period=60s --retries=3 \\",
        f"    CMD {json.dumps(['python', '-c', probe])}",
        f"ENTRYPOINT {json.dumps(list(contract.ENTRYPOINT))}",
        f"CMD {json.dumps(contract.serve_args(target))}",
        "",
    ]
    return "\n".join(lines)
