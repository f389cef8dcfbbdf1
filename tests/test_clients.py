"""The mobile clients, generated from the served document as the mobile team does it.

- TypeScript: openapi-typescript (pinned in tools/clients/package.json) and a field day
  (tools/clients/fieldday.ts) type-checked under ``tsc --strict``: no ``any``, no casts.
- Kotlin (retrofit2 + kotlinx.serialization, oneOf wrappers) and Dart (dio): the
  openapi-generator-cli PyPI package (bundles the jar, needs java). No warning that loses a
  type, and the generated models keep every type: the question union decodes by ``kind``
  into its own classes, answers and push items are typed, no model is an empty class.

There is no Kotlin compiler on the machines, so the Kotlin round trip is asserted on the
generated source: the decoder maps each ``kind`` to its class's serializer.

Each generator is skipped, saying why, only when its tool is missing (README: "Client
contract").
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from api.app import create_app
from api.config import Settings
from api.openapi import document
from schemas.surveys import SurveyQuestion

CLIENTS = Path(__file__).resolve().parent.parent / "tools" / "clients"
GENERATOR = shutil.which("openapi-generator-cli") or str(
    Path(__file__).resolve().parent.parent / ".venv" / "bin" / "openapi-generator-cli"
)
KOTLIN_OPTIONS = [
    "--library",
    "jvm-retrofit2",
    "--additional-properties",
    "serializationLibrary=kotlinx_serialization,generateOneOfAnyOfWrappers=true,"
    "packageName=vn.congdongso.client",
]
DART_OPTIONS = ["--additional-properties", "pubName=congdongso"]
# Generator log lines that say nothing about our document.
HARMLESS = (
    "OpenAPI 3.1 support is still in beta",
    # Logged by ModelUtils for any 3.1 document with components (also a one-schema one).
    "Failed to get the schema name: null",
)
TAGS = {
    str(member.__struct_config__.tag): member.__name__
    for member in SurveyQuestion.__args__  # type: ignore[attr-defined]
}


@dataclass
class Run:
    name: str
    process: subprocess.Popen[str] | None
    skipped: str | None = None

    def wait(self) -> str:
        if self.skipped is not None:
            pytest.skip(self.skipped)
        assert self.process is not None
        output, _ = self.process.communicate(timeout=600)
        assert self.process.returncode == 0, output[-4000:]
        return output


def _generator(name: str, out: Path, spec: Path, extra: list[str]) -> Run:
    if shutil.which("java") is None:
        return Run(name, None, "java is not installed: openapi-generator-cli needs a JVM")
    if not Path(GENERATOR).exists():
        return Run(name, None, "openapi-generator-cli is not installed (make install)")
    command = [
        GENERATOR,
        "generate",
        "-i",
        str(spec),
        "-g",
        name,
        "-o",
        str(out),
        "--global-property",
        "apiDocs=false,modelDocs=false,apiTests=false,modelTests=false",
        *extra,
    ]
    return Run(name, _start(command, cwd=out.parent))


def _start(command: list[str], cwd: Path) -> subprocess.Popen[str]:
    return subprocess.Popen(  # noqa: S603  # our own fixed commands
        command, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )


def _typescript(spec: Path) -> Run:
    npx = shutil.which("npx")
    if npx is None:
        return Run("typescript", None, "node/npx is not installed: the TypeScript check needs it")
    if not (CLIENTS / "node_modules" / ".bin" / "openapi-typescript").exists():
        return Run(
            "typescript",
            None,
            "tools/clients/node_modules is missing: run `make clients` (npm ci) once",
        )
    generated = CLIENTS / "generated"
    generated.mkdir(exist_ok=True)
    script = (
        f'"{npx}" --no-install openapi-typescript "{spec}" -o generated/api.ts '
        f'&& "{npx}" --no-install tsc -p tsconfig.json'
    )
    return Run("typescript", _start(["/bin/sh", "-c", script], cwd=CLIENTS))


@pytest.fixture(scope="module")
def generated(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, tuple[Run, Path]]]:
    """All three generators, started at once (each takes seconds of JVM or node start-up)."""
    base = tmp_path_factory.mktemp("clients")
    settings = Settings(
        env="test", data_dir=str(base / "data"), jwt_secret="clients-secret-clients-secret-0032"
    )
    spec = base / "openapi.json"
    spec.write_text(json.dumps(document(create_app("postgresql://unused@127.0.0.1/x", settings))))
    runs = {
        "kotlin": (_generator("kotlin", base / "kotlin", spec, KOTLIN_OPTIONS), base / "kotlin"),
        "dart": (
            _generator(
                "dart-dio", base / "dart", spec, ["--additional-properties", "pubName=congdongso"]
            ),
            base / "dart",
        ),
        "typescript": (_typescript(spec), CLIENTS),
    }
    yield runs
    for run, _ in runs.values():
        if run.process is not None and run.process.poll() is None:
            run.process.kill()


def _losses(log: str) -> list[str]:
    return [
        line
        for line in log.splitlines()
        if (" WARN " in line or " ERROR " in line) and not any(h in line for h in HARMLESS)
    ]


def _read(folder: Path, pattern: str) -> dict[str, str]:
    return {path.stem: path.read_text() for path in folder.rglob(pattern)}


def test_typescript_field_day_type_checks_strictly(
    generated: dict[str, tuple[Run, Path]],
) -> None:
    run, _ = generated["typescript"]
    run.wait()  # tsc exits non-zero on any type error
    source = (CLIENTS / "fieldday.ts").read_text()
    code = "\n".join(line.split("//")[0] for line in source.splitlines())
    assert not re.search(r"\bany\b", code), "no `any`"
    assert not re.search(r"\bas\s+[A-Z{(]|\bas\s+unknown\b|<[A-Z]\w*>\s*\w", code), "no casts"
    assert not re.search(r"\w!\s*[.;,)\]]", code), "no non-null assertions"
    # Every operation the app uses is called.
    for path in (
        "/api/v1/auth/login",
        "/api/v1/me",
        "/api/v1/sync/pull",
        "/api/v1/sync/push",
        "/api/v1/surveys/{surveyId}/versions/{version}",
        "/api/v1/modules/{moduleId}",
        "/api/v1/households",
        "/api/v1/stats/areas/{code}",
    ):
        assert f'"{path}"' in source, path
    for kind in ("submissions", "progress", "attempts"):
        assert kind in source


def test_kotlin_client_keeps_every_type(generated: dict[str, tuple[Run, Path]]) -> None:
    run, out = generated["kotlin"]
    log = run.wait()
    assert _losses(log) == []
    models = _read(out / "src" / "main" / "kotlin", "*.kt")
    # The question union: a sealed interface decoded by `kind` into each kind's class.
    union = models["SurveyQuestion"]
    assert "sealed interface SurveyQuestion" in union
    assert 'element["kind"]' in union
    for tag, member in TAGS.items():
        assert re.search(
            rf'"{tag}" -> \{{\s*val decoded = decoder\.json\.decodeFromJsonElement\('
            rf"{member}\.serializer\(\), element\)",
            union,
        ), member
        assert f'@SerialName(value = "{tag}")' in models[member]
    assert "val choices: kotlin.collections.List<SurveyChoice>" in models["SingleChoiceQuestion"]
    assert "val min: kotlin.Int?" in models["IntegerQuestion"]
    assert "val max: IntegerBound?" in models["IntegerQuestion"]
    assert "val min: java.time.LocalDate?" in models["DateQuestion"]
    assert "val questions: kotlin.collections.List<SurveyQuestion>" in models["SurveyDefinition"]
    # Answers and push items are typed.
    assert "kotlin.collections.Map<kotlin.String, AnswerValue?>" in models["NewSubmission"]
    assert "sealed interface AnswerValue" in models["AnswerValue"]
    push = models["SyncPush"]
    for item in ("NewSubmission", "PushProgress", "PushAttempt"):
        assert f"kotlin.collections.List<{item}>" in push
    # No untyped value and no empty class anywhere.
    for name, text in models.items():
        assert "kotlin.Any" not in text, name
        assert not re.search(r"\bclass \w+ \(\s*\)", text), f"{name} is an empty class"


def test_dart_client_keeps_every_type(generated: dict[str, tuple[Run, Path]]) -> None:
    run, out = generated["dart"]
    log = run.wait()
    assert _losses(log) == []
    models = _read(out / "lib" / "src" / "model", "*.dart")
    union = models["survey_question"]
    for tag, member in TAGS.items():
        assert f"r'{tag}': {member}," in union, member
    snake = {re.sub(r"(?<!^)([A-Z])", r"_\1", m).lower(): m for m in TAGS.values()}
    for file, member in snake.items():
        assert f"abstract class {member} implements SurveyQuestionBase" in models[file]
    assert "BuiltMap<String, AnswerValue?> get answers" in models["new_submission"]
    assert (
        "FullType(OneOf, [FullType(num), FullType(bool), FullType(String)"
        in (models["answer_value"])
    )
    for item in ("NewSubmission", "PushProgress", "PushAttempt"):
        assert f"BuiltList<{item}>" in models["sync_push"]
    for name, text in models.items():
        # built_value's untyped JSON, where a schema says nothing.
        assert "JsonObject" not in text, name
