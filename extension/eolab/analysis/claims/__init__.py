"""Farmers' claims (parcel declarations) from national IACS/GSAA formats, mapped to one schema.

Common schema (one row per declared parcel, geometry in the file's CRS unless ``to_crs`` is given):

=================== =========================================================
parcel_id           str, unique within the file
farmer_id           str or None (not published in every country)
crop_code           str, the national crop code
crop_name           str, the national crop name
area_declared_ha    float, the declared area (computed from the geometry where no area is given)
country             ISO code of the schema ("HU" for the eolab demo)
schema              the mapping used
hcat3_code          str, the crop's EuroCrops HCAT3 code ('' where its code list has none)
hcat3_name          str, the HCAT3 name
year                int, where the schema gives one
=================== =========================================================

Schemas are data: one YAML file per source (``claims/schemas/`` in the package: the eolab demo and
common schema, fiboa, Slovenia (EuroCrops), Austria (INSPIRE Schläge), the Netherlands (BRP
gewaspercelen), Denmark (Marker), Finland (kasvulohko), Brandenburg (antrag)); more in the folder
``EOLAB_CLAIMS_SCHEMA_DIR``. A file names the key columns that detect it, the columns of the common
schema, the rows that are not claims (e.g. landscape elements) and the crop-code list that maps the
crops to HCAT3 (:mod:`eolab.analysis.taxonomy`). GeoParquet and fiboa GeoParquet are read, and
:func:`ingest` / :func:`write_fiboa` write fiboa-compatible GeoParquet. Names are checked for
mis-decoded text (:func:`check_text`). An unknown schema raises an error that lists the columns
found and the schema folders; a malformed file raises before anything is written.
"""

from eolab.analysis.claims._fiboa import FIBOA_VERSION, ingest, write_fiboa
from eolab.analysis.claims._metric import in_metres, metric_problem
from eolab.analysis.claims._read import PARQUET, read_claims, read_raw, to_common
from eolab.analysis.claims._report import check_report
from eolab.analysis.claims._schemas import (
                                           COLUMNS,
                                           SCHEMA_DIR,
                                           SCHEMAS,
                                           ClaimsWarning,
                                           Schema,
                                           detect_schema,
                                           schema_dir_setting,
                                           schema_from_dict,
                                           schemas,
)
from eolab.analysis.claims._text import check_text

__all__ = ["COLUMNS", "FIBOA_VERSION", "PARQUET", "SCHEMAS", "SCHEMA_DIR", "ClaimsWarning", "Schema", "check_report",
           "check_text", "detect_schema", "in_metres", "ingest", "metric_problem", "read_claims", "read_raw",
           "schema_dir_setting", "schema_from_dict", "schemas", "to_common", "write_fiboa"]
