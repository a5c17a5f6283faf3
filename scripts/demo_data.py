"""Write one small deterministic demo scan (the seed comes from its name)."""

import zlib

from tomotiff_job import run


def main(say) -> None:
    from tomotiff import synthetic

    kind, name, output = snakemake.params.kind, snakemake.wildcards.name, snakemake.output[0]
    sizes = synthetic.DEMO_SIZES[kind]
    seed = zlib.crc32(name.encode())
    if kind == "savu":
        synthetic.write_savu_recon(output, seed=seed, **sizes)
    elif kind == "gda":
        synthetic.write_gda_raw(output, seed=seed, **sizes)
    else:
        synthetic.write_tiff_dir(output, seed=seed, **sizes)
    say(f"wrote demo {kind} scan {output} (seed {seed})")


run(snakemake, main)  # noqa: F821 (snakemake is injected by the script directive)
