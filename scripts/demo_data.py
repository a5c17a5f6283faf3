"""Write one small deterministic demo scan (the seed comes from its name)."""

import zlib

from tomotiff_job import run

SIZES = {
    "savu": {"height": 48, "count": 64, "width": 48, "chunks": (8, 8, 8)},
    "gda": {"projections": 120, "flats": 4, "darks": 4, "height": 24, "width": 32},
    "tiff": {"pattern": "recon_%05d.tif", "count": 40, "height": 32, "width": 40},
}


def main(say) -> None:
    from tomotiff import synthetic

    kind, name, output = snakemake.params.kind, snakemake.wildcards.name, snakemake.output[0]
    seed = zlib.crc32(name.encode())
    if kind == "savu":
        synthetic.write_savu_recon(output, seed=seed, **SIZES[kind])
    elif kind == "gda":
        synthetic.write_gda_raw(output, seed=seed, **SIZES[kind])
    else:
        synthetic.write_tiff_dir(output, seed=seed, **SIZES[kind])
    say(f"wrote demo {kind} scan {output} (seed {seed})")


run(snakemake, main)  # noqa: F821 (snakemake is injected by the script directive)
