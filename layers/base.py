"""Declarative description of a survey layer.

A layer is data, not code: what geometry it holds, which fields it has and the
names real survey files use for them, its status vocabulary, which statuses mean
"done", which measures are summed, and how it is labelled and drawn.  The engine
in :mod:`geo` reads these declarations and never names a layer itself.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from itertools import pairwise
from typing import Literal

FieldKind = Literal["str", "int", "float", "date"]
MarkerShape = Literal["circle", "square", "triangle", "diamond"]

#: Shapes a map can draw a point feature as (see :attr:`LayerSpec.shape_field`).
MARKER_SHAPES: tuple[MarkerShape, ...] = ("circle", "square", "triangle", "diamond")


@dataclass(frozen=True)
class Field:
    """One canonical attribute of a layer.

    Parameters
    ----------
    name : str
        Canonical ASCII name, at most 10 characters so it also fits a DBF header.
    kind : {"str", "int", "float", "date"}
        Stored type.  Dates are ISO ``YYYY-MM-DD`` strings.
    label_zh, label_en : str
        Column headers in Chinese and English.
    aliases : tuple of str
        Other names survey files use for this field (Chinese, pinyin initials,
        English).  Matching ignores case, spaces, underscores and full-width forms.
    unit : str
        Unit of a numeric field, e.g. ``"m2"``.
    """

    name: str
    kind: FieldKind
    label_zh: str
    label_en: str
    aliases: tuple[str, ...] = ()
    unit: str = ""


@dataclass(frozen=True)
class Status:
    """One value of a layer's status vocabulary (or of a :class:`Category`).

    ``completed`` marks the statuses that count as done in tallies; ``color`` is the
    fill of a status on maps; ``shape`` is the marker shape of a value of the
    category named by :attr:`LayerSpec.shape_field`.
    """

    code: str
    label_zh: str
    label_en: str
    aliases: tuple[str, ...] = ()
    completed: bool = False
    color: str = "#888888"
    shape: MarkerShape | None = None


#: The unit of a feature outside every unit grid (counted, in its own row, never dropped).
UNASSIGNED = "UNASSIGNED"

#: The code of a status or category value that matched nothing in its vocabulary (see
#: :func:`geo.reading.vocab.map_vocab`).  Never completed; drawn in its own colour.
UNRECOGNISED_CODE = "未识别"

#: The status every layer with a status field also has: values that matched nothing.
UNRECOGNISED = Status(UNRECOGNISED_CODE, "未识别", "Unrecognised", color="#e377c2")

#: The code of the state a map draws a site in whose status now counts as completed but that
#: was not completed on the map's as-of day (see :func:`geo.figures.facts.as_of_state`).
#: Never stored, never completed.
PENDING_CODE = "__pending__"

#: The state of a site completed after the as-of day, on that day's map: grey.
PENDING = Status(PENDING_CODE, "截至当日未完成", "Not completed as of that day", color="#9e9e9e")


@dataclass(frozen=True)
class Measure:
    """A quantity summed per unit, in total and over completed features.

    Parameters
    ----------
    key : str
        Column stem: the stats table gets ``<layer>_<key>`` and
        ``<layer>_<key_completed>`` (see :attr:`total_column`).
    field : str
        Canonical field holding the value.
    unit : str
        Unit suffix of the column, e.g. ``"m2"`` gives ``demolition_area_m2``.
    from_geometry : bool
        When the field is empty and the feature is a polygon, use the polygon's
        area in m^2 (computed in the store's projected CRS).
    """

    key: str
    field: str
    label_zh: str
    label_en: str
    unit: str = ""
    from_geometry: bool = False
    unit_zh: str = ""
    unit_en: str = ""

    @property
    def unit_words(self) -> tuple[str, str]:
        """How a report writes the unit after a figure, in Chinese and English (``平方米``/``m²``
        for ``m2``; else :attr:`unit_zh`/:attr:`unit_en`, by default ``个`` and nothing)."""
        if self.unit_zh or self.unit_en:
            return self.unit_zh, self.unit_en
        if self.unit == "m2":
            return "平方米", "m²"
        return "个", ""

    def total_column(self, layer: str) -> str:
        return f"{layer}_{self.key}_{self.unit}" if self.unit else f"{layer}_{self.key}"

    def completed_column(self, layer: str) -> str:
        if self.unit:
            return f"{layer}_{self.key}_completed_{self.unit}"
        return f"{layer}_{self.key}_completed"


@dataclass(frozen=True)
class ReportWords:
    """How the monthly report (通报) speaks of a layer.

    Parameters
    ----------
    noun_zh, noun_en : str
        What the layer counts (``违法建设`` / ``illegal structures``); empty: the layer's label.
    count_unit_zh, count_unit_en : str
        The classifier after a count (``处``, ``个``) and the English plural noun (``sites``).
    found_zh, found_en : str
        The verb for a feature recorded (``排查`` / ``found``).
    completed_zh, completed_en : str
        The verb for a feature done (``拆除`` / ``demolished``).
    task_zh : str
        The work, as the report's title names it (``违法建设治理``); empty: the noun.
    """

    noun_zh: str = ""
    noun_en: str = ""
    count_unit_zh: str = "个"
    count_unit_en: str = ""
    found_zh: str = "登记"
    found_en: str = "recorded"
    completed_zh: str = "完成"
    completed_en: str = "completed"
    task_zh: str = ""


@dataclass(frozen=True)
class Category:
    """A categorical attribute with a fixed vocabulary (e.g. position 地面/平台/楼顶)."""

    field: str
    values: tuple[Status, ...]


@dataclass(frozen=True)
class Level:
    """One level of the unit hierarchy a grid layer declares (see :attr:`LayerSpec.levels`).

    Parameters
    ----------
    name : str
        ASCII name of the level (the ``level`` of a tally, an export sheet, a map).
    label_zh, label_en : str
        How the level is called in Chinese and English.
    code_field, name_field : str
        Canonical grid fields holding the code and the name of a grid cell's unit at this
        level (for the unit grid itself: the grid's own code and name).
    code_digits : int
        Length of this level's code as a prefix of a unit-grid code: a unit grid's code of
        the unit grid level's length, all digits, starts with the codes of its units above
        (e.g. 15 digits = 6 district + 3 street + 3 community + 3 sequence).  Used where a
        grid cell leaves a unit's code field empty.
    """

    name: str
    label_zh: str
    label_en: str
    code_field: str
    name_field: str
    code_digits: int


@dataclass(frozen=True)
class LayerSpec:
    """Everything the engine needs to know about one layer.

    Parameters
    ----------
    name : str
        Registry key and table name (ASCII).
    geometry_types : frozenset of str
        Allowed base geometry types: ``"Point"``, ``"Polygon"``, ``"LineString"``.
        Multi-geometries of an allowed type are accepted.
    fields : tuple of Field
        Canonical attributes.
    id_field : str or None
        Survey id; re-imported features with the same id update stored ones.
    status_field : str or None
        Field holding the status; values are normalised to ``statuses`` codes.
    statuses : tuple of Status
        Status vocabulary, in workflow order.
    default_status : str or None
        Status given to rows without one.
    found_field, completed_field : str or None
        Date fields: when the feature was recorded and when it was completed.
        They make tallies reproducible "as of" a date.
    measures : tuple of Measure
        Quantities summed per unit.
    categories : tuple of Category
        Other normalised vocabularies.
    shape_field : str or None
        A category (one of ``categories``) whose value decides the marker shape of a
        feature on maps; each of its values declares a ``shape``.  Features whose value
        is empty or outside the vocabulary are drawn as circles with a dashed outline.
    is_grid : bool
        True for the unit-grid layer itself.
    levels : tuple of Level
        For the grid layer: the levels of its unit hierarchy, the unit grid first, then
        upward (each unit of a level lies in one unit of the next).
    style : dict
        Drawing hints for maps (colour, radius, icon).
    report : ReportWords or None
        How the monthly report speaks of the layer (None: the defaults, nouns from the labels;
        see :attr:`report_words`).
    search_fields : tuple of str
        Text fields a search box finds a feature by (substring, any case), e.g. the survey id,
        a name and the address; empty: the survey id only (see :attr:`searchable_fields`).
    required_any : tuple of str
        Fields that name a feature added by hand (the survey id, a name, the address): at least
        one of them must be given; empty: a feature may be added without any.
    """

    name: str
    label_zh: str
    label_en: str
    geometry_types: frozenset[str]
    fields: tuple[Field, ...]
    id_field: str | None = None
    status_field: str | None = None
    statuses: tuple[Status, ...] = ()
    default_status: str | None = None
    found_field: str | None = None
    completed_field: str | None = None
    measures: tuple[Measure, ...] = ()
    categories: tuple[Category, ...] = ()
    shape_field: str | None = None
    is_grid: bool = False
    levels: tuple[Level, ...] = ()
    style: dict[str, object] = field(default_factory=dict)
    report: ReportWords | None = None
    search_fields: tuple[str, ...] = ()
    required_any: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        self._check_levels()
        unknown = [f for f in self.search_fields if f not in self.field_names]
        if unknown:
            raise ValueError(f"{self.name}: search_fields {unknown} are not among its fields")
        unknown = [f for f in self.required_any if f not in self.field_names]
        if unknown:
            raise ValueError(f"{self.name}: required_any {unknown} are not among its fields")
        if self.shape_field is None:
            return
        category = self.shape_category
        if category is None:
            raise ValueError(f"{self.name}: shape_field {self.shape_field!r} is not one of its categories")
        for value in category.values:
            if value.shape not in MARKER_SHAPES:
                raise ValueError(
                    f"{self.name}: {self.shape_field} value {value.code!r} needs a shape, one of {MARKER_SHAPES}"
                )

    def _check_levels(self) -> None:
        names = [lv.name for lv in self.levels]
        if len(set(names)) != len(names):
            raise ValueError(f"{self.name}: level names repeat: {names}")
        known = {f.name for f in self.fields}
        for lv in self.levels:
            for f in (lv.code_field, lv.name_field):
                if f not in known:
                    raise ValueError(f"{self.name}: level {lv.name!r} names {f!r}, not one of its fields")
        digits = [lv.code_digits for lv in self.levels]
        if any(a <= b for a, b in pairwise(digits)) or any(d <= 0 for d in digits):
            raise ValueError(f"{self.name}: level codes must get shorter upward: {digits}")

    @property
    def report_words(self) -> ReportWords:
        """:attr:`report` with its empty nouns filled from the layer's labels."""
        words = self.report or ReportWords()
        noun_zh = words.noun_zh or self.label_zh
        return replace(
            words, noun_zh=noun_zh, noun_en=words.noun_en or self.label_en, task_zh=words.task_zh or noun_zh
        )

    def field(self, name: str) -> Field:
        for f in self.fields:
            if f.name == name:
                return f
        raise KeyError(name)

    @property
    def field_names(self) -> list[str]:
        return [f.name for f in self.fields]

    @property
    def searchable_fields(self) -> tuple[str, ...]:
        """The fields a search looks in: the survey id first, then :attr:`search_fields`."""
        ids = (self.id_field,) if self.id_field else ()
        return tuple(dict.fromkeys((*ids, *self.search_fields)))

    @property
    def completed_statuses(self) -> frozenset[str]:
        return frozenset(s.code for s in self.statuses if s.completed)

    @property
    def shape_category(self) -> Category | None:
        """The category named by :attr:`shape_field`, or None."""
        return next((c for c in self.categories if c.field == self.shape_field), None)

    def status(self, code: str) -> Status:
        for s in self.all_statuses:
            if s.code == code:
                return s
        raise KeyError(code)

    @property
    def all_statuses(self) -> tuple[Status, ...]:
        """:attr:`statuses` and, when the layer has a status field, :data:`UNRECOGNISED`."""
        return (*self.statuses, UNRECOGNISED) if self.status_field else self.statuses

    @property
    def vocab_fields(self) -> dict[str, tuple[Status, ...]]:
        """Fields holding a vocabulary (the status and the categories) → their values."""
        out: dict[str, tuple[Status, ...]] = {}
        if self.status_field:
            out[self.status_field] = self.statuses
        for c in self.categories:
            out[c.field] = c.values
        return out

    @property
    def raw_fields(self) -> tuple[Field, ...]:
        """One stored text field per vocabulary field, ``<field>_raw``: the value as surveyed,
        beside the code it was mapped to."""
        out = []
        for name in self.vocab_fields:
            f = self.field(name)
            out.append(Field(f"{name}_raw", "str", f"{f.label_zh}(原值)", f"{f.label_en} (as surveyed)"))
        return tuple(out)

    @property
    def stored_fields(self) -> tuple[Field, ...]:
        """What the store keeps per feature: :attr:`fields` and :attr:`raw_fields`."""
        return (*self.fields, *self.raw_fields)
