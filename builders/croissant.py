"""Stage 9, publish: ``croissant.json``, the folder described in Croissant 1.1 (JSON-LD).

One record set per config, read from its parquet files (a ``split`` field taken from each file's
name), every column a field with its type (lists as arrays), every file with its SHA-256 and
size, and the responsible-AI fields of :func:`mmbench.builders.datasheet.responsible_ai`.
Spec: https://docs.mlcommons.org/croissant/docs/croissant-spec-1.1.html; the RAI extension:
https://docs.mlcommons.org/croissant/docs/croissant-rai-spec.html.
"""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from mmbench import layout
from mmbench.builders.datasheet import LICENCE, responsible_ai
from mmbench.builders.ingest import LASTFM_PAGE, PUBLISHED_MD5
from mmbench.loading import SYNTHETIC_NOTE, built_from_lastfm1k
from mmbench.schema import CODE_URL, DATASET_DATE, HUB_ID, TITLE, mgphot_gene_list

# The standard @context of Croissant 1.1 (arrays are written with the full ``cr:`` names).
CONTEXT = {
    "@language": "en",
    "@vocab": "https://schema.org/",
    "citeAs": "cr:citeAs",
    "column": "cr:column",
    "conformsTo": "dct:conformsTo",
    "cr": "http://mlcommons.org/croissant/",
    "rai": "http://mlcommons.org/croissant/RAI/",
    "data": {"@id": "cr:data", "@type": "@json"},
    "dataType": {"@id": "cr:dataType", "@type": "@vocab"},
    "dct": "http://purl.org/dc/terms/",
    "equivalentProperty": "cr:equivalentProperty",
    "examples": {"@id": "cr:examples", "@type": "@json"},
    "extract": "cr:extract",
    "field": "cr:field",
    "fileProperty": "cr:fileProperty",
    "fileObject": "cr:fileObject",
    "fileSet": "cr:fileSet",
    "format": "cr:format",
    "includes": "cr:includes",
    "isLiveDataset": "cr:isLiveDataset",
    "jsonPath": "cr:jsonPath",
    "key": "cr:key",
    "md5": "cr:md5",
    "parentField": "cr:parentField",
    "path": "cr:path",
    "recordSet": "cr:recordSet",
    "references": "cr:references",
    "regex": "cr:regex",
    "repeated": "cr:repeated",
    "replace": "cr:replace",
    "samplingRate": "cr:samplingRate",
    "sc": "https://schema.org/",
    "separator": "cr:separator",
    "source": "cr:source",
    "subField": "cr:subField",
    "transform": "cr:transform",
    "prov": "http://www.w3.org/ns/prov#",
}
# Keys of the record sets, and the fields that point at another record set's key.
KEYS = {
    "sessions": "session_id",
    "instances": "instance_id",
    "tracks": "track_id",
    "users": "user_id",
}
REFERENCES = {
    "sessions/user_id": "users/user_id",
    "sessions/track_ids": "tracks/track_id",
    "instances/user_id": "users/user_id",
    "instances/session_id": "sessions/session_id",
    "instances/target_track_id": "tracks/track_id",
    "instances/candidates": "tracks/track_id",
}
SPLIT_NAMES = ("train", "validation", "test", "catalog")
PARQUET = "application/x-parquet"
CITATION = (
    f"@misc{{mmbench2026, title = {{{TITLE}}}, author = {{mmbench contributors}}, year = {{2026}}, "
    f"note = {{https://huggingface.co/datasets/{HUB_ID}, code: {CODE_URL}}}}}"
)
CONFIG_DESCRIPTIONS = {
    "sessions": "One row per listening session: its user, start time and per-play lists.",
    "instances": "The evaluation instances of the next-track and paper-sampled tasks, with the target's segment labels.",
    "tracks": "The catalogue: one row per track, with its names, MusicBrainz ids, duration and training plays.",
    "users": "One row per user: the self-declared profile and the number of training sessions.",
}


def _data_type(t: pa.DataType) -> str:
    if pa.types.is_string(t) or pa.types.is_large_string(t):
        return "sc:Text"
    if pa.types.is_boolean(t):
        return "sc:Boolean"
    if pa.types.is_integer(t):
        return "sc:Integer"
    if pa.types.is_floating(t):
        return "sc:Float"
    if pa.types.is_timestamp(t):
        return "sc:DateTime"
    if pa.types.is_date(t):
        return "sc:Date"
    raise ValueError(f"no Croissant type for {t}")


def _field(config: str, column: pa.Field, files: str) -> dict:
    """A record set field read from the parquet column of the same name."""
    field: dict = {"@type": "cr:Field", "@id": f"{config}/{column.name}", "name": column.name}
    value = column.type
    if pa.types.is_list(value) or pa.types.is_fixed_size_list(value):
        field["cr:isArray"] = True
        if pa.types.is_fixed_size_list(value):
            field["cr:arrayShape"] = str(value.list_size)
        value = value.value_type
    field["dataType"] = _data_type(value)
    if column.name == "genes":
        names = ", ".join(str(g["name"]) for g in mgphot_gene_list())
        field["description"] = f"MGPHot gene values in [0, 1], in this order: {names}."
    field["source"] = {"fileSet": {"@id": files}, "extract": {"column": column.name}}
    return field


def _record_set(folder: Path, config: str, report: dict) -> tuple[list[dict], dict]:
    """The distribution entries (each file, then the config's file set) and the record set."""
    content = report.get("content", {})
    paths = layout.config_files(folder, config)
    files = f"{config}-parquet"
    distribution = [
        {
            "@type": "cr:FileObject",
            "@id": str(p.relative_to(folder)),
            "name": str(p.relative_to(folder)),
            "contentUrl": str(p.relative_to(folder)),
            "encodingFormat": PARQUET,
            "contentSize": f"{p.stat().st_size} B",
            "sha256": report["outputs"][str(p.relative_to(folder))],
        }
        for p in paths
    ]
    distribution.append(
        {
            "@type": "cr:FileSet",
            "@id": files,
            "name": files,
            "encodingFormat": PARQUET,
            "includes": f"{layout.DATA}/{config}/*.parquet",
        }
    )
    split = {
        "@type": "cr:Field",
        "@id": f"{config}/split",
        "name": "split",
        "description": "The split of the file the row comes from.",
        # Typed as a split (the values are the `splits` record set's); not a reference, which
        # mlcroissant would resolve by a join through the file-name transform.
        "dataType": ["sc:Text", "cr:Split"],
        "source": {
            "fileSet": {"@id": files},
            "extract": {"fileProperty": "fullpath"},
            "transform": {"regex": r"^(?:.*/)?(\w+)-\d{5}-of-\d{5}\.parquet$"},
        },
    }
    schema = pq.read_schema(paths[0])
    description = CONFIG_DESCRIPTIONS.get(config) or (
        f"One row per track with the content: {content[config]['model']}, {content[config]['dim']} values."
    )
    fields = [split, *(_field(config, column, files) for column in schema)]
    for field in fields:
        if field["@id"] in REFERENCES:
            field["references"] = {"field": {"@id": REFERENCES[field["@id"]]}}
        elif config not in KEYS and field["name"] == "track_id":  # a content config's row is a track's
            field["references"] = {"field": {"@id": "tracks/track_id"}}
    record_set = {
        "@type": "cr:RecordSet",
        "@id": config,
        "name": config,
        "description": description,
        "key": {"@id": f"{config}/{KEYS.get(config, 'track_id')}"},
        "field": fields,
    }
    return distribution, record_set


def splits_record_set() -> dict:
    """The splits, typed ``cr:Split``, that every record set's ``split`` field references."""
    return {
        "@type": "cr:RecordSet",
        "@id": "splits",
        "name": "splits",
        "description": "The splits of the configs: train, validation and test by session start time; catalog for the catalogues.",
        "dataType": "cr:Split",
        "key": {"@id": "splits/name"},
        "field": [{"@type": "cr:Field", "@id": "splits/name", "name": "name", "dataType": "sc:Text"}],
        "data": [{"splits/name": name} for name in SPLIT_NAMES],
    }


def croissant_metadata(folder: Path, report: dict) -> dict:
    """The Croissant JSON-LD of a built folder whose parquet files are written."""
    distribution, record_sets = [], [splits_record_set()]
    for config in layout.configs(folder):
        files, record_set = _record_set(folder, config, report)
        distribution += files
        record_sets.append(record_set)
    rai = {f"rai:{name}": text for name, text in responsible_ai(report).items()}
    # The property's type is a date: the first and last play; the text stays in the datasheet.
    stats = report["statistics"]
    rai["rai:dataCollectionTimeFrame"] = [stats["first_play_utc"], stats["last_play_utc"]]
    real = built_from_lastfm1k(report)
    return {
        "@context": CONTEXT,
        "@type": "sc:Dataset",
        "name": "LastFM-1K-MM" if real else "LastFM-1K-MM synthetic sample (not LastFM-1K data)",
        "description": ("" if real else SYNTHETIC_NOTE + " ")
        + (
            "Session-based music recommendation on the LastFM-1K listening logs: sessions with "
            "per-play listening times and completion ratios, a global temporal split, evaluation "
            "instances of the next-track and paper-sampled tasks, and audio, lyrics and MGPHot "
            f"content vectors. Recipe `{report['recipe']['name']}`; dataset fingerprint "
            f"{report['fingerprint']}."
        ),
        "conformsTo": "http://mlcommons.org/croissant/1.1",
        "citeAs": CITATION,
        "license": LASTFM_PAGE,
        "usageInfo": LICENCE,
        "url": f"https://huggingface.co/datasets/{HUB_ID}",
        "version": report["dataset_version"],
        "creator": {"@type": "sc:Organization", "name": "The mmbench contributors", "url": CODE_URL},
        "maintainer": {
            "@type": "sc:Organization",
            "name": "The mmbench maintainers",
            "url": f"{CODE_URL}/issues",
        },
        "datePublished": DATASET_DATE,
        "prov:wasDerivedFrom": {
            "@id": LASTFM_PAGE,
            "name": "LastFM-1K (O. Celma, 2010)",
            "description": "The published archive's files, by MD5: "
            + ", ".join(f"{name} {md5}" for name, md5 in sorted(PUBLISHED_MD5.items()))
            + ("" if real else "; this build's inputs differ from them (build_report.json)"),
        },
        "keywords": ["music recommendation", "session-based recommendation", "benchmark", "LastFM-1K"],
        "isBasedOn": LASTFM_PAGE,
        **rai,
        "distribution": distribution,
        "recordSet": record_sets,
    }


def croissant_text(folder: Path, report: dict) -> str:
    """``croissant.json``'s text (keys in a fixed order, so identical builds give identical bytes)."""
    return json.dumps(croissant_metadata(folder, report), indent=2, ensure_ascii=False) + "\n"
