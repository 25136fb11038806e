"""camp info / camp search: what is inside datasets, from their recorded metadata."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

import click

from campaignvcs import porcelain
from campaignvcs.cli import Env, pass_env
from campaignvcs.cli.output import echo_warnings, format_size, json_option

if TYPE_CHECKING:
    from campaignvcs.porcelain.info import DatasetInfo


def _value(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False) if not isinstance(value, str) else json.dumps(value)


def _values(value: Any) -> str:
    """A single value, or the first values per step and the last (the whole list is in --json)."""
    if isinstance(value, list) and len(value) > 5:
        return ", ".join(_value(v) for v in value[:3]) + f", ..., {_value(value[-1])}"
    if isinstance(value, list):
        return ", ".join(_value(v) for v in value)
    return _value(value)


def _shape(shape: list[int] | None) -> str:
    return "-" if shape is None else "{" + ", ".join(map(str, shape)) + "}"


def _echo_groups(node: dict[str, Any], depth: int) -> None:
    pad = "  " * depth
    click.echo(f"{pad}{node['path']}")
    for a in node["attributes"]:
        click.echo(f"{pad}  @{a['name']} {a['dtype']} = {_value(a['value'])}")
    for link in node["links"]:
        click.echo(f"{pad}  {link['name']} -> {link['target']}")
    for ds in node["datasets"]:
        extra = ""
        if ds["chunks"] is not None:
            extra += f"  chunks {_shape(ds['chunks'])}"
        if ds["compression"]:
            extra += f"  {ds['compression']}"
            if ds["compression_opts"] is not None:
                extra += f"({ds['compression_opts']})"
        click.echo(f"{pad}  {ds['name']}  {ds['dtype']}  {_shape(ds['shape'])}{extra}")
        for a in ds["attributes"]:
            click.echo(f"{pad}    @{a['name']} {a['dtype']} = {_value(a['value'])}")
    for sub in node["groups"]:
        _echo_groups(sub, depth + 1)


def _echo_info(info: DatasetInfo) -> None:
    state = ""
    if info.encrypted:
        state = "  (metadata encrypted, decrypted with the key at hand)" if info.decrypted else \
            "  (metadata encrypted, key not at hand: names only)"
    click.echo(f"{info.kind} {info.name}{state}")
    for r in info.replicas:
        where = "" if r.archive is None else f"  [archive {r.archive or '(folder)'}]"
        click.echo(f"  replica {r.host}:{r.path}{where}")
    if info.image is not None:
        img = info.image
        click.echo(f"  image {img['width']}x{img['height']}")
        for t in img["thumbnails"]:
            click.echo(f"  thumbnail {t['width']}x{t['height']}")
    if info.text is not None:
        txt = info.text
        click.echo(f"  text {format_size(txt['size'])}, encoding {txt['encoding'] or 'unknown (not stored)'}")
        for line in txt["head"] or []:
            click.echo(f"  | {line}")
    if info.kind == "HDF5" and info.groups is not None:
        _echo_groups(info.groups, 1)
    elif info.variables or info.attributes:
        width = max([len(v.name) for v in info.variables] + [len(a.name) for a in info.attributes] + [4])
        for v in info.variables:
            if v.single_value:
                what = f"= {_values(v.value)}" if v.value is not None else "single value"
            else:
                what = f"{v.min} / {v.max}" if v.min is not None else ""
            click.echo(f"  {v.type:<9} {v.name:<{width}}  {v.steps}*{_shape(v.shape):<12} {what}".rstrip())
        for a in info.attributes:
            click.echo(f"  {a.type:<9} {a.name:<{width}}  attr = {_value(a.value)}")
    if info.note:
        click.echo(f"  ({info.note})")


@click.command("info")
@click.argument("name")
@click.option("--rev", metavar="REV", help="Read this revision (default: the staging area, else HEAD).")
@click.option("-k", "--keyfile", metavar="KEYFILE", help="Key file for encrypted metadata.")
@json_option
@pass_env
def info_cmd(env: Env, name: str, rev: str | None, keyfile: str | None, as_json: bool) -> None:
    """Show what is inside dataset NAME: variables, attributes, groups, image size, text.

    Only what the repository holds is read, so it works when the data is elsewhere.
    """
    info = porcelain.dataset_info(name, rev=rev, repo=env.repo, env=env.env, keyfile=keyfile)
    if as_json:
        click.echo(json.dumps(info.to_json(), indent=2, ensure_ascii=False))
    else:
        _echo_info(info)
    echo_warnings(info.warnings)


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, list):
        return "{" + ", ".join(map(str, value)) + "}"
    return str(value)


@click.command("search")
@click.argument("pattern", required=False)
@click.option("--var", metavar="GLOB", help="Only datasets holding a variable matching GLOB (one hit per variable).")
@click.option("--attr", metavar="NAME[=VALUE]", help="Only datasets with attribute NAME (a glob), of VALUE if given.")
@click.option("--range", "value_range", metavar="LO:HI",
              help="Only variables whose [min, max] overlaps LO..HI (either side may be empty).")
@click.option("--kind", type=click.Choice(["ADIOS", "HDF5", "IMAGE", "TEXT"], case_sensitive=False),
              help="Only datasets of this kind.")
@click.option("--host", metavar="HOST", help="Only datasets with a replica on HOST.")
@click.option("-k", "--keyfile", metavar="KEYFILE", help="Key file for encrypted metadata.")
@click.option("--limit", type=click.IntRange(min=0), default=0, show_default=True, metavar="N",
              help="Show the first N hits and say if there are more (0: all).")
@json_option
@pass_env
def search_cmd(env: Env, pattern: str | None, var: str | None, attr: str | None, value_range: str | None,
               kind: str | None, host: str | None, keyfile: str | None, limit: int, as_json: bool) -> None:
    """Find datasets by name PATTERN (a glob), variable, attribute, value range, kind or host.

    Searches every archive in the campaign store and, inside a campaign, its HEAD.
    """
    from campaignvcs.porcelain.search import search  # the module shadows a package-level name

    result = search(pattern, var=var, attr=attr, value_range=value_range, kind=kind, host=host,
                    repo=env.repo, env=env.env, keyfile=keyfile, limit=limit or None)
    more = [f"showing the first {limit} hits; more match (--limit 0 shows all)"] if result.more else []
    echo_warnings([*result.warnings, *more])
    if as_json:  # hits hold JSON values only: no dataclass walk for 100,000 of them
        click.echo(json.dumps([vars(h) for h in result.hits], indent=2, ensure_ascii=False))
        return
    per_variable = var is not None or value_range is not None
    rows = []
    for h in result.hits:
        where = h.archive if h.source == "store" else f"{h.archive} (repository)"
        hosts = ",".join(h.hosts) or "-"
        if h.encrypted:
            rows.append([where, h.dataset, "[encrypted metadata: key not at hand]", hosts])
        elif per_variable:
            rows.append([where, h.dataset, str(h.variable), str(h.type), _cell(h.shape), f"{h.steps} steps",
                         f"{_cell(h.min)} / {_cell(h.max)}", hosts])
        else:
            rows.append([where, h.dataset, h.kind, hosts])
    widths: dict[int, int] = {}
    for row in rows:
        for i, cell in enumerate(row[:-1]):
            widths[i] = max(widths.get(i, 0), len(cell))
    for row in rows:
        click.echo("  ".join([*(c.ljust(widths[i]) for i, c in enumerate(row[:-1])), row[-1]]))
