"""Forms generated from a JSON Schema: an analysis's ``Params`` (and a study's ``dp`` block) as controls.

:func:`form_fields` turns the schema the hub publishes (``GET /api/v1/analyses/{name}``, pydantic's
``model_json_schema()``) into a tree of :class:`FormField`, which ``newstudy_fields.html`` renders:

* strings → text inputs (``cohort``, and a string that may also be an object, → a textarea);
* integers and numbers → number inputs with the schema's ``minimum``/``maximum``;
* enums → selects; lists of enum values → checkboxes; booleans → checkboxes;
* lists of strings or numbers → one comma-separated input; lists of one kind of object → a repeatable
  fieldset ("Add another"), which works without JavaScript (the server re-renders the form);
* objects with properties → fieldsets (an optional one has an "include" checkbox);
* anything the controls above cannot hold (mappings, lists of alternatives such as OMOP covariates) →
  a YAML (or JSON) textarea, with the alternatives and an example in its help.

Every field is named by its path in the study file (``analysis.params.table.cohort``), so an
:class:`~phds.errors.InputError` of the study's checks lands next to the field it names.
:mod:`phds.web.params_values` reads a submitted form back into the mapping the model validates.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Literal

FieldKind = Literal[
    "text", "textarea", "number", "select", "checkboxes", "checkbox", "list", "yaml", "group", "repeat"
]
ValueType = Literal["string", "integer", "number", "scalar"]
SCALAR_TYPES = ("string", "integer", "number")
TEXTAREA_NAMES = frozenset({"cohort", "purpose"})
ITEMS_KEY = "__items"  # hidden input: how many items a repeatable fieldset shows
INCLUDE_KEY = "__include"  # checkbox of an optional fieldset


@dataclass
class Variant:
    """One alternative of a list's items (e.g. an OMOP covariate kind), for the help of a YAML field."""

    tag: str
    description: str
    required: list[str]
    optional: list[str]


@dataclass
class FormField:
    """One control (or fieldset) of a generated form, named by its dotted path in the study file."""

    name: str
    label: str
    kind: FieldKind
    key: str = ""
    required: bool = False
    help: str = ""
    constraints: list[str] = field(default_factory=list)
    default: Any = None
    choices: dict[str, Any] = field(default_factory=dict)  # option value (text) → the schema's value
    option_labels: dict[str, str] = field(default_factory=dict)  # option value → its label, if not itself
    attrs: dict[str, str] = field(default_factory=dict)  # HTML attributes: min, max, step, maxlength
    children: list[FormField] = field(default_factory=list)
    value_type: ValueType = "string"
    optional_group: bool = False
    min_items: int = 0
    max_items: int | None = None
    fixed_items: int | None = None  # a tuple: exactly this many comma-separated values
    item_label: str = ""
    example: str = ""
    variants: list[Variant] = field(default_factory=list)

    @property
    def id(self) -> str:
        """The HTML id: the name with every character outside ``[A-Za-z0-9_-]`` made ``-``."""
        return "f-" + re.sub(r"[^A-Za-z0-9_-]", "-", self.name)

    @property
    def items_name(self) -> str:
        return f"{self.name}.{ITEMS_KEY}"

    @property
    def include_name(self) -> str:
        return f"{self.name}.{INCLUDE_KEY}"

    def walk(self) -> list[FormField]:
        """This field and every field inside it, depth first."""
        return [self, *(f for child in self.children for f in child.walk())]


def form_fields(schema: dict[str, Any], prefix: str, counts: dict[str, int] | None = None) -> list[FormField]:
    """The fields of the object *schema*, named ``<prefix>.<property>``; *counts* sets how many items
    each repeatable fieldset (by name) shows."""
    return _Builder(schema, counts or {}).properties(schema, prefix, parent_required=True)


def schema_group(
    schema: dict[str, Any], name: str, label: str, *, optional: bool, counts: dict[str, int] | None = None
) -> FormField:
    """The object *schema* as one fieldset named *name* (*optional*: the person ticks it to include it)."""
    builder = _Builder(schema, counts or {})
    children = builder.properties(schema, name, parent_required=not optional)
    return FormField(
        name,
        label,
        "group",
        key=name.rsplit(".", 1)[-1],
        required=not optional,
        help=plain(schema.get("description", "")),
        children=children,
        optional_group=optional,
    )


def plain(text: Any) -> str:
    """A docstring-style description as plain text: ``name`` → name."""
    return str(text or "").replace("``", "")


def humanise(key: str) -> str:
    """``max_iter`` → ``Max iter``."""
    text = key.replace("_", " ").strip()
    return text[:1].upper() + text[1:]


class _Builder:
    def __init__(self, root: dict[str, Any], counts: dict[str, int]) -> None:
        self.defs: dict[str, Any] = root.get("$defs", {})
        self.counts = counts

    def resolve(self, node: Any) -> dict[str, Any]:
        """Follow ``$ref`` (to ``#/$defs/...``); keys beside the reference (description, default) win.
        A schema of ``true`` (anything) is ``{}``."""
        if not isinstance(node, dict):
            return {}
        seen = 0
        while "$ref" in node and seen < 20:
            target = self.defs.get(str(node["$ref"]).rsplit("/", 1)[-1], {})
            node = {**target, **{k: v for k, v in node.items() if k != "$ref"}}
            seen += 1
        resolved: dict[str, Any] = node
        return resolved

    def properties(self, schema: dict[str, Any], prefix: str, *, parent_required: bool) -> list[FormField]:
        schema = self.resolve(schema)
        required = set(schema.get("required", []))
        return [
            self.field(f"{prefix}.{key}" if prefix else key, key, node, key in required and parent_required)
            for key, node in (schema.get("properties") or {}).items()
        ]

    def field(self, name: str, key: str, node: dict[str, Any], required: bool) -> FormField:
        label = node.get("title") or humanise(key)  # before resolving: a model's own title is its class's
        if label == key.replace("_", " ").title():  # pydantic's automatic title: say it as a sentence
            label = humanise(key)
        node = self.resolve(node)
        base = FormField(
            name,
            label,
            "text",
            key=key,
            required=required,
            help=plain(node.get("description", "")),
            default=node.get("default"),
        )
        alternatives = [self.resolve(a) for a in node.get("anyOf") or node.get("oneOf") or []]
        if alternatives:
            nullable = any(a.get("type") == "null" for a in alternatives)
            real = [a for a in alternatives if a.get("type") != "null"]
            if len(real) == 1:
                merged = {**real[0], **{k: v for k, v in node.items() if k not in ("anyOf", "oneOf")}}
                return self.typed(base, merged, nullable=nullable)
            return self.union(base, real)
        return self.typed(base, node, nullable=False)

    def union(self, base: FormField, alternatives: list[dict[str, Any]]) -> FormField:
        types = [a.get("type") for a in alternatives]
        if "string" in types and all(t in ("string", "object", "array") for t in types):
            base.kind = "textarea"  # text (YAML, JSON...) the model accepts as a string
            return base
        if all(t in SCALAR_TYPES for t in types):
            base.value_type = "scalar"
            return base
        return self.yaml(base, {"anyOf": alternatives})

    def typed(self, base: FormField, node: dict[str, Any], *, nullable: bool) -> FormField:
        kind = node.get("type")
        if "enum" in node or "const" in node:
            return self.select(base, node, nullable=nullable)
        if kind == "string":
            base.kind = "textarea" if base.key in TEXTAREA_NAMES else "text"
            for attr, html in (("maxLength", "maxlength"), ("minLength", "minlength")):
                if attr in node:
                    base.attrs[html] = str(node[attr])
            return base
        if kind in ("integer", "number"):
            return self.number(base, node, kind)
        if kind == "boolean":
            base.kind = "checkbox"
            base.default = bool(node.get("default", False))
            return base
        if kind == "array":
            return self.array(base, node)
        if kind == "object" and node.get("properties"):
            base.kind = "group"
            base.optional_group = nullable or (not base.required and base.default is None)
            base.children = self.properties(node, base.name, parent_required=base.required)
            base.help = base.help or plain(node.get("description", ""))
            return base
        return self.yaml(base, node)

    def select(self, base: FormField, node: dict[str, Any], *, nullable: bool) -> FormField:
        values = list(node["enum"]) if "enum" in node else [node["const"]]
        base.kind = "select"
        base.choices = {str(v): v for v in values}
        if "default" not in node and len(values) == 1:
            base.default = values[0]
        if nullable or (not base.required and base.default is None):
            base.choices = {"": None, **base.choices}
        return base

    def number(self, base: FormField, node: dict[str, Any], kind: str) -> FormField:
        base.kind = "number"
        base.value_type = "integer" if kind == "integer" else "number"
        base.attrs["step"] = "1" if kind == "integer" else "any"
        if "minimum" in node:
            base.attrs["min"] = _num(node["minimum"])
        if "maximum" in node:
            base.attrs["max"] = _num(node["maximum"])
        base.constraints += _bounds(node)
        return base

    def array(self, base: FormField, node: dict[str, Any]) -> FormField:
        base.min_items, base.max_items = int(node.get("minItems", 0)), node.get("maxItems")
        if node.get("prefixItems"):
            kinds = {self.resolve(p).get("type") for p in node["prefixItems"]}
            if kinds <= set(SCALAR_TYPES):
                base.kind, base.fixed_items = "list", len(node["prefixItems"])
                base.value_type = kinds.pop() if len(kinds) == 1 else "scalar"  # type: ignore[assignment]
                base.constraints.append(f"exactly {base.fixed_items}, separated by commas")
                return base
            return self.yaml(base, node)
        items = self.resolve(node.get("items") or {})
        if "enum" in items:
            base.kind = "checkboxes"
            base.choices = {str(v): v for v in items["enum"]}
            base.default = list(base.default or [])
            return base
        if items.get("type") in SCALAR_TYPES:
            base.kind, base.value_type = "list", items["type"]
            what = {"integer": "whole numbers", "number": "numbers"}.get(items["type"], "values")
            base.constraints.append(f"{what} separated by commas" + _count(base))
            base.constraints += _bounds(items, each=True)
            return base
        if items.get("type") == "object" and items.get("properties"):
            return self.repeat(base, items)
        return self.yaml(base, node)

    def repeat(self, base: FormField, items: dict[str, Any]) -> FormField:
        base.kind = "repeat"
        singular = base.key[:-1] if base.key.endswith("s") and len(base.key) > 3 else base.key
        base.item_label = humanise(singular or "item")
        count = self.counts.get(base.name, max(base.min_items, 1))
        if base.max_items is not None:
            count = min(count, int(base.max_items))
        for i in range(max(count, base.min_items)):
            item = FormField(
                f"{base.name}.{i}",
                f"{base.item_label} {i + 1}",
                "group",
                key=str(i),
                required=base.required,
                help=plain(items.get("description", "")),
            )
            item.children = self.properties(items, item.name, parent_required=base.required)
            base.children.append(item)
        if _count(base):
            base.constraints.append(_count(base).removeprefix(", "))
        return base

    def yaml(self, base: FormField, node: dict[str, Any]) -> FormField:
        base.kind = "yaml"
        if node.get("type") == "object":
            value = self.resolve(node.get("additionalProperties") or {})
            base.example = f"name: {_example(value, self)}"
            base.constraints.append("a YAML (or JSON) mapping, one entry a line")
            if "maxProperties" in node:
                base.constraints.append(f"at most {node['maxProperties']} entries")
            return base
        items = self.resolve(node.get("items") or node)
        alternatives = [self.resolve(a) for a in items.get("anyOf") or items.get("oneOf") or [items]]
        base.variants = [v for v in (_variant(a, self) for a in alternatives) if v is not None]
        base.constraints.append("a YAML (or JSON) list, one item per '- '" + _count(base))
        if base.variants:
            base.example = "\n".join(_flow_example(a, self) for a in alternatives[:2])
        return base


def _num(value: Any) -> str:
    return str(int(value)) if float(value).is_integer() else str(value)


def _bounds(node: dict[str, Any], *, each: bool = False) -> list[str]:
    parts = []
    if "minimum" in node:
        parts.append(f"at least {_num(node['minimum'])}")
    if "exclusiveMinimum" in node:
        parts.append(f"more than {_num(node['exclusiveMinimum'])}")
    if "maximum" in node:
        parts.append(f"at most {_num(node['maximum'])}")
    if "exclusiveMaximum" in node:
        parts.append(f"less than {_num(node['exclusiveMaximum'])}")
    if not parts:
        return []
    return [("each " if each else "") + " and ".join(parts)]


def _count(f: FormField) -> str:
    if f.max_items is not None and f.min_items:
        return f", {f.min_items} to {f.max_items}"
    if f.max_items is not None:
        return f", at most {f.max_items}"
    return f", at least {f.min_items}" if f.min_items else ""


def _example(node: dict[str, Any], builder: _Builder) -> str:
    """A short YAML value of the schema *node*, for a help text."""
    node = builder.resolve(node)
    if "const" in node:
        return str(node["const"])
    if "enum" in node:
        return str(node["enum"][0])
    kind = node.get("type")
    if kind == "array":
        inner = _example(node.get("items") or {}, builder)
        return f"[{inner}, {inner}]"
    if kind == "object":
        return "{...}"
    if kind in ("integer", "number"):
        return "1"
    if kind == "boolean":
        return "true"
    return "value" if kind == "string" else "text or number"


def _flow_example(node: dict[str, Any], builder: _Builder) -> str:
    """One list item in YAML flow style with the required keys of *node*: ``- {name: value, kind: age}``."""
    properties = node.get("properties") or {}
    keys = [k for k in node.get("required", []) if k in properties]
    return "- {" + ", ".join(f"{k}: {_example(properties[k], builder)}" for k in keys) + "}"


def _variant(node: dict[str, Any], builder: _Builder) -> Variant | None:
    properties = node.get("properties") or {}
    if not properties:
        return None
    tag_key = next((k for k, p in properties.items() if "const" in builder.resolve(p)), None)
    tag = ""
    if tag_key is not None:
        tag = f"{tag_key}: {builder.resolve(properties[tag_key])['const']}"
    else:
        enum_key = next((k for k, p in properties.items() if "enum" in builder.resolve(p)), None)
        if enum_key is not None:
            tag = f"{enum_key}: {' | '.join(map(str, builder.resolve(properties[enum_key])['enum']))}"
    required = [k for k in node.get("required", []) if k != tag_key]
    optional = [k for k in properties if k not in required and k != tag_key]
    return Variant(tag or str(node.get("title", "")), plain(node.get("description", "")), required, optional)
