"""config/README.md's table of batch keys is generated from config/schema.yaml's descriptions.

The test fails when the two differ; `python tests/test_config_docs.py` rewrites the table.
"""

import json
import sys
from pathlib import Path

import yaml

from tomotiff import batch

REPO = Path(__file__).resolve().parents[1]
SCHEMA = REPO / "config" / "schema.yaml"
README = REPO / "config" / "README.md"
BEGIN = "<!-- begin: generated from config/schema.yaml by `python tests/test_config_docs.py` -->"
END = "<!-- end: generated -->"


# What a key holding one of the schema's shared definitions takes.
DEFINITIONS = {"window": "a window (its keys below)", "settings": "the settings (below)", "scan": "scans"}


def _resolve(schema: dict, node: dict) -> tuple[dict, str | None]:
    """A property with its $ref followed (the property's own keys win, as in the schema), and
    the name of the definition it refers to."""
    name = None
    while "$ref" in node:
        target = schema
        for part in node["$ref"].removeprefix("#/").split("/"):
            target = target[part]
        if node["$ref"].count("/") == 2:  # #/$defs/NAME: a shared definition, not a property
            name = node["$ref"].rsplit("/", 1)[1]
        node = {**target, **{key: value for key, value in node.items() if key != "$ref"}}
    return node, name


def _yaml(value) -> str:
    """As it is written in a batch file: plain where YAML reads it back as itself, else quoted."""
    if isinstance(value, str):
        try:
            if yaml.safe_load(value) == value:
                return value
        except yaml.YAMLError:
            pass
    return json.dumps(value)  # JSON is YAML: null, false, [8], {}, "{scan}_%05d.tif"


def _value(schema: dict, node: dict, name: str | None = None) -> str:
    """What a key takes, from its type, enum and bounds."""
    if name in DEFINITIONS:
        return DEFINITIONS[name]
    if "enum" in node:
        return " \\| ".join(f"`{_yaml(v)}`" for v in node["enum"])
    if "anyOf" in node:
        return " or ".join(_value(schema, *_resolve(schema, option)) for option in node["anyOf"])
    if node.get("type") is None:
        return ""
    types = node["type"] if isinstance(node["type"], list) else [node["type"]]
    names = []
    for kind in types:
        if kind == "array":
            fixed = "minItems" in node and node.get("minItems") == node.get("maxItems")
            size = f"{node['minItems']} " if fixed else ""
            names.append(f"list of {size}{_value(schema, *_resolve(schema, node.get('items', {})))}")
        elif kind == "object":
            keys = ", ".join(f"`{key}`" for key in node.get("properties", {}))
            values = {_value(schema, *_resolve(schema, sub)) for sub in node.get("properties", {}).values()}
            names.append(f"{keys}, each {values.pop()}" if len(values) == 1 else "mapping")
        else:
            names.append(
                {"integer": "integer", "number": "number", "string": "text", "boolean": "true/false", "null": "`null`"}[
                    kind
                ]
            )
    bounds = [
        f"{sign} {node[key]}"
        for key, sign in (("minimum", ">="), ("exclusiveMinimum", ">"), ("maximum", "<="), ("exclusiveMaximum", "<"))
        if key in node
    ]
    if bounds:
        names[0] += " " + ", ".join(bounds)
    return " or ".join(names)


def _row(schema: dict, key: str, where: str, node: dict, required: bool) -> str:
    node, name = _resolve(schema, node)
    if "description" not in node:
        raise ValueError(f"config/schema.yaml: {key} has no description")
    meaning = " ".join(node["description"].split()).replace("|", "\\|")
    value = _value(schema, node, name)
    default = "required" if required else f"`{_yaml(node['default'])}`" if "default" in node else "-"
    return f"| `{key}` | {where} | {value} | {default} | {meaning} |"


def config_table(schema: dict) -> str:
    """The Markdown table of every key of a batch file, each once, from the schema's descriptions."""
    defs = schema["$defs"]
    scan = defs["scan"]
    rows = ["| key | where | value | default | meaning |", "|---|---|---|---|---|"]
    for key, node in schema["properties"].items():
        rows.append(_row(schema, key, "batch", node, key in schema.get("required", [])))
    settings = defs["settings"]["properties"]
    for key, node in scan["properties"].items():
        if key not in settings:  # the keys only a scan has; the others are its settings, below
            rows.append(_row(schema, key, "scan", node, key in scan.get("required", [])))
    for key, node in settings.items():
        rows.append(_row(schema, key, "`defaults` or scan", node, False))
    for key, node in defs["window"]["properties"].items():
        rows.append(_row(schema, key, "in a window", node, False))
    return "\n".join(rows) + "\n"


def generated_block(schema: dict) -> str:
    return f"{BEGIN}\n{config_table(schema)}{END}"


def current_block(text: str) -> str:
    start, end = text.index(BEGIN), text.index(END) + len(END)
    return text[start:end]


def test_every_scan_key_is_a_setting_or_scan_only():
    """The table lists a scan's keys as `id`, `input` and the settings: nothing else may exist."""
    schema = yaml.safe_load(SCHEMA.read_text())
    settings = set(schema["$defs"]["settings"]["properties"])
    assert set(schema["$defs"]["scan"]["properties"]) - settings == {"id", "input"}


def test_config_readme_holds_the_generated_table():
    schema = yaml.safe_load(SCHEMA.read_text())
    assert current_block(README.read_text()) == generated_block(schema), (
        "config/README.md's table differs from config/schema.yaml: run `python tests/test_config_docs.py`"
    )


def test_the_readmes_example_batch_is_valid():
    """The batch file README.md shows is one a user may copy: it validates and resolves."""
    block = (REPO / "README.md").read_text().split("### The batch file", 1)[1].split("```yaml", 1)[1]
    scans = batch.load(yaml.safe_load(block.split("```", 1)[0]), str(SCHEMA))
    assert len(scans) == 12 and scans["13429"]["mask"] == {"shape": "circle", "values": []}


if __name__ == "__main__":
    text = README.read_text()
    new = text.replace(current_block(text), generated_block(yaml.safe_load(SCHEMA.read_text())))
    if new == text:
        print("config/README.md: the table is up to date")
    else:
        README.write_text(new)
        print("config/README.md: table rewritten from config/schema.yaml")
    sys.exit(0)
