"""Importing an XLSForm (.xlsx) as a survey draft.

pyxform reads the workbook (``get_xlsform``: its own rows per sheet, which give the row
numbers) and builds the form (``workbook_to_json``: types de-aliased, choices attached,
groups and repeats nested). This module maps that form onto the definition and reports
everything it cannot map, per row: sheet, row number, column, what is not supported and
what to use instead. Nothing here touches the database.
"""

from __future__ import annotations

import contextlib
import re
from dataclasses import dataclass, field
from datetime import date
from typing import Any

import msgspec
from pyxform.errors import PyXFormError
from pyxform.xls2json import workbook_to_json
from pyxform.xls2json_backends import get_xlsform

from api.authoring import expressions as expr
from api.errors import FieldError
from api.i18n import N_
from schemas.surveys import (
    CalculateQuestion,
    ChoiceFilter,
    Condition,
    DateQuestion,
    DecimalQuestion,
    IntegerQuestion,
    Localized,
    MultiChoiceQuestion,
    NoteQuestion,
    Roster,
    SingleChoiceQuestion,
    SurveyChoice,
    SurveyDefinition,
    SurveyQuestion,
    TextQuestion,
)

ROW_UNSUPPORTED = N_("Sheet %(sheet)s, row %(row)s, column %(column)s: %(what)s; %(instead)s.")

# What is not supported, and what to use instead (message ids).
TYPE = N_("the question type %(name)s is not supported")
NO_GPS = N_("no location is collected (personal data rules): use a hamlet or a text question")
NO_MEDIA = N_("no photos, sound, video, files or barcodes are collected: use text or a select")
METADATA = N_("the server records when and by whom a submission was collected: remove the row")
USE_DATE = N_("use date")
USE_INTEGER = N_("use integer with a constraint such as . >= 1 and . <= 10")
USE_SELECT = N_("use select_one or select_multiple with the choices sheet")
USE_SUPPORTED = N_(
    "use text, integer, decimal, date, note, select_one, select_multiple, calculate, "
    "begin/end group or begin/end repeat"
)
COLUMN = N_("the column %(name)s is not supported")
COLUMN_INSTEAD = N_("remove the column (the app uses its own display and messages)")
LANGUAGE = N_("the language %(name)s is not supported")
LANGUAGE_INSTEAD = N_("give labels and hints in Vietnamese (vi) and English (en)")
SETTING = N_("the setting %(name)s is not supported")
SETTING_INSTEAD = N_("use form_id, form_title, version and default_language only")
NAME = N_("the name %(name)s cannot be a key")
NAME_INSTEAD = N_("use up to 40 lower-case letters, digits and underscores, starting with a letter")
CHOICE_NAME = N_("the choice name %(name)s cannot be a value")
CHOICE_NAME_INSTEAD = N_("use up to 40 lower-case letters, digits and underscores")
SECOND_REPEAT = N_("a repeat inside a repeat, or a second repeat, is not supported")
ONE_ROSTER = N_("use one repeat, at the top level, for the member roster")
REPEAT_RELEVANT = N_("a condition on the member roster is not supported")
REPEAT_RELEVANT_INSTEAD = N_("put the condition on the questions inside the repeat")
CONSTRAINT_KIND = N_("a constraint on this question type is not supported")
CONSTRAINT_KIND_INSTEAD = N_(
    "constrain integer, decimal, date and text questions only (choices are already checked)"
)
BAD_DEFAULT = N_("the default %(name)s is not a valid answer")
BAD_DEFAULT_INSTEAD = N_("give a default that is a valid answer to the question")
CHECK = N_("the definition is not consistent (%(field)s)")
CHECK_INSTEAD = N_("a condition, filter or calculation must refer to an earlier question")

_UNSUPPORTED_TYPES: dict[str, str] = {
    **{t: NO_GPS for t in ("geopoint", "geotrace", "geoshape", "start-geopoint")},
    **{
        t: NO_MEDIA
        for t in ("image", "audio", "video", "file", "barcode", "background-audio", "photo")
    },
    **{
        t: METADATA
        for t in (
            "start",
            "end",
            "today",
            "deviceid",
            "subscriberid",
            "simserial",
            "phonenumber",
            "username",
            "email",
            "audit",
        )
    },
    "dateTime": USE_DATE,
    "time": USE_DATE,
    "range": USE_INTEGER,
    "rank": USE_SELECT,
    "select one from file": USE_SELECT,
    "select all that apply from file": USE_SELECT,
    "select one external": USE_SELECT,
    "acknowledge": USE_SELECT,
    "trigger": USE_SELECT,
}

_SURVEY_COLUMNS = {
    "type",
    "name",
    "label",
    "hint",
    "required",
    "relevant",
    "constraint",
    "calculation",
    "choice_filter",
    "default",
}
_SETTINGS = {"form_id", "form_title", "version", "default_language"}
_KEY = re.compile(r"[a-z][a-z0-9_]{0,39}")
_CHOICE_VALUE = re.compile(r"[a-z0-9_]{1,40}")
_LANGUAGE = re.compile(r".*\((vi|en)\)\s*")
_YES = {"yes", "true", "true()", "1"}


@dataclass(frozen=True)
class RowProblem:
    sheet: str
    row: int
    column: str
    what: str
    instead: str
    params: dict[str, object] = field(default_factory=dict)

    def error(self) -> FieldError:
        return FieldError(
            f"{self.sheet}[{self.row}].{self.column}",
            "unsupported",
            ROW_UNSUPPORTED,
            {
                "sheet": self.sheet,
                "row": self.row,
                "column": self.column,
                "what": self.what,
                "instead": self.instead,
                **self.params,
            },
        )


@dataclass
class Sheets:
    survey: list[dict[str, Any]]
    choices: list[dict[str, Any]]
    settings: list[dict[str, Any]]


class InvalidWorkbook(Exception):
    """Not an XLSForm pyxform can read; ``str()`` is pyxform's own explanation."""


@dataclass
class Imported:
    form_id: str
    version: str | None
    definition: SurveyDefinition | None  # None when nothing could be imported
    problems: list[RowProblem]
    rows: dict[str, int]  # each question's row on the survey sheet


def _language(name: str, default: str) -> str | None:
    """'vi', 'en' or None for a pyxform language name ('Vietnamese (vi)', 'default')."""
    if name == "default":
        name = default
    found = _LANGUAGE.fullmatch(name)
    if found:
        return found.group(1)
    return {"vi": "vi", "en": "en", "vietnamese": "vi", "english": "en"}.get(name.lower())


def _localized(value: Any, default: str, fallback: str) -> Localized:
    texts: dict[str, str] = {}
    if isinstance(value, str):
        texts["vi" if _language(default, default) != "en" else "en"] = value
    elif isinstance(value, dict):
        for name, text in value.items():
            language = _language(str(name), default)
            if language is not None and isinstance(text, str) and text:
                texts.setdefault(language, text)
    vi = texts.get("vi") or texts.get("en") or fallback
    return Localized(vi=vi[:500], en=(texts.get("en") or vi)[:500])


class _Importer:
    def __init__(self, workbook: Sheets, form: dict[str, Any]) -> None:
        self.form = form
        self.default = str(form.get("default_language") or "default")
        self.problems: list[RowProblem] = []
        # pyxform keeps empty rows so that row numbers stay right: data starts on row 2.
        self.rows = {
            str(row["name"]): index + 2
            for index, row in enumerate(workbook.survey)
            if row.get("name")
        }
        self.choice_rows = {
            (str(row.get("list_name")), str(row.get("name"))): index + 2
            for index, row in enumerate(workbook.choices)
            if row.get("name")
        }
        self.filter_columns: set[str] = set()
        self.roster: Roster | None = None
        self.roster_row = 0

    def report(
        self, sheet: str, row: int, column: str, what: str, instead: str, **params: object
    ) -> None:
        self.problems.append(RowProblem(sheet, row, column, what, instead, params))

    def check_columns(self, workbook: Sheets) -> None:
        for index, row in enumerate(workbook.survey):
            if row.get("choice_filter"):
                with contextlib.suppress(expr.Unsupported):  # reported with its question
                    self.filter_columns.add(expr.choice_filter(str(row["choice_filter"]))[0])
            for column in row:
                base, _, language = str(column).partition("::")
                if base in ("label", "hint") and language:
                    if _language(language, self.default) is None:
                        self.report(
                            "survey", index + 2, column, LANGUAGE, LANGUAGE_INSTEAD, name=language
                        )
                elif base not in _SURVEY_COLUMNS:
                    self.report("survey", index + 2, column, COLUMN, COLUMN_INSTEAD, name=column)
        for index, row in enumerate(workbook.choices):
            for column in row:
                base, _, language = str(column).partition("::")
                if base == "label" and language:
                    if _language(language, self.default) is None:
                        self.report(
                            "choices", index + 2, column, LANGUAGE, LANGUAGE_INSTEAD, name=language
                        )
                elif base not in ("list_name", "name", "label") and (
                    column not in self.filter_columns
                ):
                    self.report("choices", index + 2, column, COLUMN, COLUMN_INSTEAD, name=column)
        for row in workbook.settings[:1]:
            for column in row:
                if column not in _SETTINGS:
                    self.report("settings", 2, column, SETTING, SETTING_INSTEAD, name=column)

    def questions(
        self, children: list[dict[str, Any]], inherited: list[Condition], in_repeat: bool
    ) -> list[SurveyQuestion]:
        found: list[SurveyQuestion] = []
        for element in children:
            kind = str(element.get("type", ""))
            name = str(element.get("name", ""))
            row = self.rows.get(name, 0)
            bind = element.get("bind") or {}
            if name not in self.rows:
                # Added by pyxform, not by a row: its meta/instanceID (the submission id plays
                # that part) or a repeat_count's helper (that column is reported).
                continue
            conditions = list(inherited)
            if bind.get("relevant"):
                try:
                    conditions.append(expr.condition(str(bind["relevant"])))
                except expr.Unsupported as exc:
                    self.report("survey", row, "relevant", exc.what, exc.instead, **exc.params)
                    continue
            if kind == "group":
                found += self.questions(element.get("children") or [], conditions, in_repeat)
                continue
            if kind == "repeat":
                if in_repeat or self.roster is not None:
                    self.report("survey", row, "type", SECOND_REPEAT, ONE_ROSTER)
                    continue
                if len(conditions) > len(inherited) or inherited:
                    self.report("survey", row, "relevant", REPEAT_RELEVANT, REPEAT_RELEVANT_INSTEAD)
                    continue
                self.roster_row = row
                members = self.questions(element.get("children") or [], [], True)
                if members:
                    self.roster = Roster(
                        label=_localized(element.get("label"), self.default, name),
                        questions=members,
                    )
                continue
            if not _KEY.fullmatch(name):
                self.report("survey", row, "name", NAME, NAME_INSTEAD, name=name)
                continue
            question = self.question(element, kind, name, row, bind)
            if question is None:
                continue
            relevant = None
            if len(conditions) == 1:
                relevant = conditions[0]
            elif conditions:
                relevant = Condition(op="all", of=conditions)
            found.append(msgspec.structs.replace(question, relevant=relevant))
        return found

    def question(
        self, element: dict[str, Any], kind: str, name: str, row: int, bind: dict[str, Any]
    ) -> SurveyQuestion | None:
        label = _localized(element.get("label"), self.default, name)
        hint = _localized(element["hint"], self.default, name) if element.get("hint") else None
        required = str(bind.get("required", "")).strip().lower() in _YES
        common: dict[str, Any] = {"key": name, "label": label, "hint": hint, "required": required}
        if kind in _UNSUPPORTED_TYPES or kind not in (
            "text",
            "integer",
            "decimal",
            "date",
            "note",
            "select one",
            "select all that apply",
            "calculate",
        ):
            self.report(
                "survey",
                row,
                "type",
                TYPE,
                _UNSUPPORTED_TYPES.get(kind, USE_SUPPORTED),
                name=kind,
            )
            return None
        if kind == "calculate":
            try:
                formula = expr.formula(str(bind.get("calculate", "")))
            except expr.Unsupported as exc:
                self.report("survey", row, "calculation", exc.what, exc.instead, **exc.params)
                return None
            return CalculateQuestion(**{**common, "required": False}, formula=formula)
        if kind == "note":
            return NoteQuestion(**{**common, "required": False})
        limits = expr.Limits()
        if bind.get("constraint"):
            if kind not in ("text", "integer", "decimal", "date"):
                self.report("survey", row, "constraint", CONSTRAINT_KIND, CONSTRAINT_KIND_INSTEAD)
                return None
            try:
                limits = expr.constraint(str(bind["constraint"]), kind)
            except expr.Unsupported as exc:
                self.report("survey", row, "constraint", exc.what, exc.instead, **exc.params)
                return None
        question: SurveyQuestion
        if kind == "text":
            question = TextQuestion(
                **common,
                min_length=limits.min_length or 0,
                max_length=min(limits.max_length or 200, 2000),
                pattern=limits.pattern,
            )
        elif kind == "integer":
            question = IntegerQuestion(
                **common,
                min=None if limits.minimum is None else int(limits.minimum),
                max=None if limits.maximum is None else int(limits.maximum),
            )
        elif kind == "decimal":
            question = DecimalQuestion(**common, min=limits.minimum, max=limits.maximum)
        elif kind == "date":
            question = DateQuestion(**common, min=limits.earliest, max=limits.latest)
        else:
            choices = self.choices(element)
            if choices is None:
                return None
            choice_filter = None
            if element.get("choice_filter"):
                try:
                    column, key = expr.choice_filter(str(element["choice_filter"]))
                except expr.Unsupported as exc:
                    self.report("survey", row, "choice_filter", exc.what, exc.instead)
                    return None
                choice_filter = ChoiceFilter(column=column, key=key)
            if kind == "select one":
                question = SingleChoiceQuestion(
                    **common, choices=choices, choice_filter=choice_filter
                )
            else:
                question = MultiChoiceQuestion(
                    **common, choices=choices, choice_filter=choice_filter
                )
        if element.get("default") is not None:
            default = _default(question, str(element["default"]))
            if default is None:
                self.report(
                    "survey",
                    row,
                    "default",
                    BAD_DEFAULT,
                    BAD_DEFAULT_INSTEAD,
                    name=str(element["default"]),
                )
                return None
            question = msgspec.structs.replace(question, default=default)
        return question

    def choices(self, element: dict[str, Any]) -> list[SurveyChoice] | None:
        list_name = str(element.get("itemset") or element.get("list_name") or "")
        found: list[SurveyChoice] = []
        broken = False
        for item in element.get("choices") or []:
            value = str(item.get("name", ""))
            if not _CHOICE_VALUE.fullmatch(value):
                row = self.choice_rows.get((list_name, value), 0)
                self.report("choices", row, "name", CHOICE_NAME, CHOICE_NAME_INSTEAD, name=value)
                broken = True
                continue
            filters = {
                column: str(item[column])
                for column in self.filter_columns
                if item.get(column) is not None
            }
            found.append(
                SurveyChoice(
                    value=value,
                    label=_localized(item.get("label"), self.default, value),
                    filters=filters or None,
                )
            )
        return None if broken or not found else found


def _default(question: SurveyQuestion, text: str) -> Any:
    """The XLSForm default (always text) as an answer of ``question``, or None."""
    try:
        if isinstance(question, IntegerQuestion):
            return int(text)
        if isinstance(question, DecimalQuestion):
            return float(text)
        if isinstance(question, DateQuestion):
            return date.fromisoformat(text[:10]).isoformat()
        if isinstance(question, MultiChoiceQuestion):
            return text.split()
    except ValueError:
        return None
    return text


def import_xlsform(data: bytes) -> Imported:
    """Read ``data`` (an .xlsx XLSForm); raises InvalidWorkbook when pyxform cannot."""
    try:
        workbook = get_xlsform(data, file_type=".xlsx")
        # The rows as written: building the form adds rows of pyxform's own (e.g. for
        # repeat_count), which no one wrote and which have no row number.
        written = Sheets(
            survey=[dict(row) for row in workbook.survey or []],
            choices=[dict(row) for row in workbook.choices or []],
            settings=[dict(row) for row in workbook.settings or []],
        )
        form = workbook_to_json(workbook, warnings=[])
    except (PyXFormError, ValueError, KeyError, TypeError) as exc:
        raise InvalidWorkbook(str(exc)) from exc
    importer = _Importer(written, form)
    importer.check_columns(written)
    form_id = str(form.get("id_string") or "")
    if not _KEY.fullmatch(form_id):
        importer.report("settings", 2, "form_id", NAME, NAME_INSTEAD, name=form_id)
    questions = importer.questions(form.get("children") or [], [], False)
    title = str(form.get("title") or form_id)
    definition = None
    if questions:
        try:
            definition = msgspec.convert(
                msgspec.to_builtins(
                    SurveyDefinition(
                        title=Localized(vi=title[:500], en=title[:500]),
                        questions=questions,
                        roster=importer.roster,
                    )
                ),
                SurveyDefinition,
            )
        except msgspec.ValidationError as exc:
            raise InvalidWorkbook(str(exc)) from exc
    version = form.get("version")
    importer.problems.sort(key=lambda p: (p.sheet != "survey", p.sheet, p.row, p.column))
    return Imported(
        form_id=form_id,
        version=str(version) if version is not None else None,
        definition=definition,
        problems=importer.problems,
        rows=importer.rows,
    )


def definition_problems(imported: Imported, errors: list[FieldError]) -> list[RowProblem]:
    """check_definition's errors (``questions[3].relevant.key``) against their rows."""
    definition = imported.definition
    problems = []
    for error in errors:
        found = re.match(r"(roster\.)?questions\[(\d+)\]\.?([\w.\[\]]*)", error.field)
        row, column = 0, error.field
        if definition is not None and found:
            level = (
                definition.roster.questions
                if found.group(1) and definition.roster is not None
                else definition.questions
            )
            index = int(found.group(2))
            if index < len(level):
                row = imported.rows.get(level[index].key, 0)
            column = found.group(3) or "name"
        problems.append(
            RowProblem("survey", row, column, CHECK, CHECK_INSTEAD, {"field": error.field})
        )
    return problems
