"""The beamline commands nxs2tiff, nxs2tiffux and tiff2tiffux, and ``tomotiff verify``.

Thin by design: parse the arguments into a :class:`tomotiff.plan.Request` and run it with
:func:`tomotiff.pipeline.run`. Every user error is one line on stderr and exit code 2.
"""

import argparse
import os
import re
import sys
from collections.abc import Callable
from typing import TextIO

from tomotiff import __version__, engine, pipeline
from tomotiff.calibration import parse_pixel_size
from tomotiff.errors import TomotiffError
from tomotiff.keys import SELECTIONS
from tomotiff.manifest import verify
from tomotiff.mask import Mask
from tomotiff.pattern import DEFAULT_PATTERN, check_pattern, format_name
from tomotiff.plan import Destination, Layout, Product, Request, SourceRequest
from tomotiff.quantisation import loop_in_use
from tomotiff.selection import Crop
from tomotiff.sink import COMPRESSIONS, TiffFormat
from tomotiff.window import WindowRequest

EXIT_USAGE = 2


class _Parser(argparse.ArgumentParser):
    """argparse whose errors are one line that points at -h, and which reads ``--lo -3e-3`` as a
    number (argparse's own pattern for negative numbers has no exponent)."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._negative_number_matcher = re.compile(r"^-(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?$")

    def error(self, message: str):
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message}; see {self.prog} -h\n")

    def parse_args(self, args=None, namespace=None):
        """As argparse, but a long option typed with one dash (``-lo 0``: argparse would read
        ``-h`` and print the help) is an error naming the option meant."""
        args = sys.argv[1:] if args is None else list(args)
        long_options = {name for action in self._actions for name in action.option_strings if name.startswith("--")}
        for arg in args:
            if arg == "--":
                break
            if re.fullmatch(r"-[A-Za-z_][\w-]+", arg) and f"-{arg}" in long_options:
                self.error(f"unknown option {arg}: long options take two dashes, {'-' + arg}")
        return super().parse_args(args, namespace)


class _Formatter(argparse.RawDescriptionHelpFormatter, argparse.ArgumentDefaultsHelpFormatter):
    """Examples keep their lines; defaults are shown where there is one to show."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        if action.default is None or action.default is False or "default" in (action.help or ""):
            return action.help
        return super()._get_help_string(action)


def _parser(prog: str, description: str, epilog: str) -> argparse.ArgumentParser:
    return _Parser(prog=prog, description=description, epilog=epilog, formatter_class=_Formatter)


def _add_common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-b", "--begin", type=int, default=0, metavar="N", help="first image index")
    parser.add_argument(
        "-s",
        "--stop",
        type=int,
        default=None,
        metavar="N",
        help="stop before this image index (exclusive; default: after the last image)",
    )
    parser.add_argument(
        "-j",
        "--workers",
        type=int,
        default=engine.default_workers(),
        metavar="N",
        help="worker threads (default: %(default)s, this machine's cores up to 8)",
    )
    parser.add_argument("-q", "--quiet", action="store_true", help="print nothing but errors")
    parser.add_argument("-V", "--version", action="version", version=_version("%(prog)s (tomotiff)"))


def _version(name: str) -> str:
    return f"{name} {__version__}; quantisation loop: {loop_in_use()}"


def _add_layout(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("output choices")
    group.add_argument(
        "--compression",
        choices=tuple(COMPRESSIONS),
        default="none",
        help="TIFF compression (zstd is fast; zlib, lzw and packbits are widely readable)",
    )
    group.add_argument(
        "--stack",
        action="store_true",
        help="write one multi-page TIFF (an ImageJ stack with --imagej) named as the first image; "
        "past 4 GiB, several, each named as its first image",
    )
    group.add_argument(
        "--imagej",
        action="store_true",
        help="ImageJ metadata: dimensions, display range, slice labels, the provenance in Show Info, "
        "and for 8/16 bits a calibration so that ImageJ measures the original values",
    )
    group.add_argument(
        "--ome",
        action="store_true",
        help="OME-TIFF (for Bio-Formats, Fiji and napari): the pixel size as PhysicalSize and the "
        "provenance as the image's Description; name the files .ome.tif",
    )
    group.add_argument(
        "--pixel-size",
        metavar="SIZE",
        type=parse_pixel_size,
        default=None,
        help="the pixel size in the sample, e.g. 1.625um or 0.65e-6m (a plain number: micrometres), "
        "written as the TIFF resolution (default: what the file records, if it does)",
    )
    group.add_argument(
        "--crop",
        type=int,
        nargs=4,
        metavar=("TOP", "BOTTOM", "LEFT", "RIGHT"),
        default=None,
        help="pixels removed from each edge of every image",
    )
    group.add_argument(
        "--bin",
        type=int,
        choices=(2, 4),
        default=1,
        help="mean binning of 2x2 or 4x4 pixels, before quantisation (default: none)",
    )


def _add_raw(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group(
        "raw scans",
        "NXtomo raw scans mark images with image_key (0 projection, 1 flat, 2 dark); found at the\n"
        "NXtomo locations or anywhere in the file. The default window then comes from projections only.",
    )
    group.add_argument("--keys", choices=SELECTIONS, default="all", help="which images to write")
    group.add_argument(
        "--split-keys",
        action="store_true",
        help="write projections/, flats/ and darks/ subdirectories (images keep their scan index)",
    )
    group.add_argument("--image-key-path", metavar="PATH", help="the image_key dataset, if not found by itself")


def _add_hdf5(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("input_file", metavar="INPUT_FILE", help="HDF5/NeXus file (.nxs, .h5)")
    parser.add_argument("output_dir", metavar="OUTPUT_DIR", help="directory for the TIFFs (created if missing)")
    parser.add_argument(
        "-d",
        "--dataset",
        metavar="PATH",
        help="dataset path, e.g. /entry/final_result_tomo/data (default: the NeXus default signal)",
    )
    parser.add_argument(
        "-i",
        "--axis",
        type=int,
        default=0,
        metavar="N",
        help="axis of the image index, counted in the dataset's own rank",
    )
    parser.add_argument(
        "-o",
        "--output-pattern",
        default=DEFAULT_PATTERN,
        metavar="FMT",
        help="printf-style output file name; the number is the image's index along the axis",
    )
    _add_common(parser)


def _bit_depths(text: str) -> tuple[int, ...]:
    """-u 8, -u 16, or -u 8,16 (both, from one read)."""
    try:
        depths = tuple(sorted({int(part) for part in text.split(",")}))
    except ValueError:
        depths = ()
    if not depths or not set(depths) <= {8, 16}:
        raise argparse.ArgumentTypeError(f"takes 8, 16 or 8,16, not {text!r}")
    return depths


def _add_reduction(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "-u",
        "--bits",
        type=_bit_depths,
        default="8",
        metavar="8|16|8,16",
        help="output bit depth; 8,16 writes both from one read, into OUTPUT_DIR/u8 and OUTPUT_DIR/u16",
    )
    window = parser.add_argument_group(
        "intensity window",
        "lo maps to 0 and hi to 2**bits-1. Give --lo/--hi, or --use_ref to take them from the\n"
        "P-th and (100-P)-th percentiles of a reference image (an explicit --lo or --hi still\n"
        "overrides its side). With neither, --use_ref is implied.",
    )
    window.add_argument("--lo", type=float, metavar="X", help="value mapped to 0")
    window.add_argument("--hi", type=float, metavar="Y", help="value mapped to 2**bits-1")
    window.add_argument("--use_ref", "--use-ref", action="store_true", help="take lo/hi from a reference image")
    window.add_argument(
        "-r",
        "--ref",
        type=int,
        default=None,
        metavar="N",
        help="reference image index (default: the middle image of the range)",
    )
    window.add_argument(
        "-p",
        "--percent",
        type=float,
        default=0.0,
        metavar="P",
        help="percent cut from each end of the reference image's values, 0 <= P < 50 (0: min/max)",
    )
    window.add_argument(
        "--window",
        choices=("reference", "global"),
        default="reference",
        help="global: percentiles of all selected images (one streaming pass), not of one image",
    )
    window.add_argument(
        "--sample", type=int, default=1, metavar="N", help="with --window global, read every Nth image only"
    )
    window.add_argument(
        "--mask",
        choices=("circle",),
        default=None,
        help="percentiles only inside the largest circle centred in the (cropped) image: a reconstruction's "
        "field of view (default: every pixel); the images written keep their size",
    )
    window.add_argument(
        "--mask-value",
        "--ignore-value",
        action="append",
        default=[],
        metavar="V",
        help="leave pixels equal to V (a number, or nan) out of the percentiles, e.g. padding 0; repeatable",
    )


EPILOG_NXS2TIFF = """examples:
  nxs2tiff -d /entry/final_result_tomo/data -b 0 -s 50 -i 1 --fp 13429_processed.nxs tiffs/
  nxs2tiff -d /entry1/instrument/pco1_hw_hdf/data -b 0 -s 2159 23912.nxs projections/"""
EPILOG_NXS2TIFFUX = """examples:
  nxs2tiffux -d /entry/final_result_tomo/data -b 0 -s 50 -i 1 -u 8 --lo -0.0017 --hi 0.0017 13429_processed.nxs u8/
  nxs2tiffux -d /entry/final_result_tomo/data -i 1 -u 16 --use_ref -r 1080 -p 0.1 13429_processed.nxs u16/"""
EPILOG_TIFF2TIFFUX = """examples:
  tiff2tiffux -b 0 -s 2159 -i recon_129200_%05d.tif -o recon_129200_%05d.tif -u 8 --use_ref -r 1080 -p 0.1 \\
      87637/ u8/87637/
  tiff2tiffux -i recon_129200_%05d.tif -u 8 --lo -0.0017 --hi 0.0017 87637/ u8/87637/"""


def _nxs2tiff_parser() -> argparse.ArgumentParser:
    parser = _parser(
        "nxs2tiff", "Extract the images of an HDF5/NeXus dataset as TIFFs, keeping the data type.", EPILOG_NXS2TIFF
    )
    _add_hdf5(parser)
    parser.add_argument(
        "--fp",
        action="store_true",
        help="write 32-bit floating point (needed for floating-point data; widens integer data)",
    )
    _add_raw(parser)
    _add_layout(parser)
    return parser


def _nxs2tiffux_parser() -> argparse.ArgumentParser:
    parser = _parser(
        "nxs2tiffux", "Extract the images of an HDF5/NeXus dataset as 8- or 16-bit unsigned TIFFs.", EPILOG_NXS2TIFFUX
    )
    _add_hdf5(parser)
    _add_reduction(parser)
    _add_raw(parser)
    _add_layout(parser)
    return parser


def _tiff2tiffux_parser() -> argparse.ArgumentParser:
    parser = _parser(
        "tiff2tiffux", "Reduce a directory of TIFF images to 8- or 16-bit unsigned TIFFs.", EPILOG_TIFF2TIFFUX
    )
    parser.add_argument(
        "input_dir",
        metavar="INPUT",
        help="a directory of single-image TIFF files named by -i, or one multi-page TIFF (an ImageJ "
        "or tifffile stack, BigTIFF): its images are numbered by page, and -b/-s/-r count pages",
    )
    parser.add_argument("output_dir", metavar="OUTPUT_DIR", help="directory for the TIFFs (created if missing)")
    parser.add_argument(
        "-i",
        "--input-pattern",
        default=DEFAULT_PATTERN,
        metavar="FMT",
        help="printf-style input file name, e.g. recon_129200_%%05d.tif",
    )
    parser.add_argument(
        "-o",
        "--output-pattern",
        default=None,
        metavar="FMT",
        help="printf-style output file name (default: the input pattern)",
    )
    _add_common(parser)
    _add_reduction(parser)
    _add_layout(parser)
    return parser


def _say(args: argparse.Namespace) -> Callable[[str], None]:
    return (lambda text: None) if args.quiet else (lambda text: print(text, flush=True))


def _warn(args: argparse.Namespace) -> Callable[[str], None]:
    return (lambda text: None) if args.quiet else (lambda text: print(text, file=sys.stderr, flush=True))


def _check_workers(workers: int) -> int:
    if workers < 1:
        raise TomotiffError(f"-j/--workers must be at least 1, got {workers}")
    return workers


def _layout(args: argparse.Namespace) -> Layout:
    return Layout(TiffFormat(args.compression, args.imagej, ome=args.ome), args.stack, args.bin)


def _crop(args: argparse.Namespace) -> Crop:
    return Crop(*args.crop) if args.crop else Crop()


def _window(args: argparse.Namespace) -> WindowRequest:
    reference = args.ref if args.use_ref or args.ref is not None else None
    mask = Mask.of(args.mask, args.mask_value)
    if mask and args.lo is not None and args.hi is not None:
        raise TomotiffError(
            "--mask and --mask-value choose the pixels percentiles look at; with --lo and --hi both "
            "given no percentile is taken: drop one of them"
        )
    return WindowRequest(args.lo, args.hi, reference, args.percent, args.window, args.sample, mask)


def _run(args: argparse.Namespace, request: Request) -> None:
    progress = not args.quiet and sys.stderr.isatty()
    pipeline.run(request, _check_workers(args.workers), progress, say=_say(args), warn=_warn(args))


def _products(args: argparse.Namespace) -> tuple[Product, ...]:
    """nxs2tiffux and tiff2tiffux: one product per bit depth asked for, each through the window asked for."""
    return tuple(Product(bits, _window(args)) for bits in args.bits)


def _destination(args: argparse.Namespace, products: tuple[Product, ...]) -> Destination:
    """OUTPUT_DIR itself, or with several bit depths one directory per depth below it (u8, u16)."""
    return Destination(args.output_dir, by_product=len(products) > 1)


def _hdf5_request(args: argparse.Namespace, products: tuple[Product, ...]) -> Request:
    """nxs2tiff and nxs2tiffux: one output directory (per bit depth), or (--split-keys) one per kind of image."""
    check_pattern(args.output_pattern, "-o/--output-pattern")
    if args.split_keys and args.keys != "all":
        raise TomotiffError(
            f"--split-keys writes every kind of image, each into its own directory; "
            f"leave out --keys {args.keys} (or drop --split-keys)"
        )
    source = SourceRequest(
        args.input_file, "hdf5", args.dataset, args.axis, begin=args.begin, stop=args.stop, crop=_crop(args)
    )
    return Request(
        source,
        products,
        _destination(args, products),
        args.output_pattern,
        args.keys,
        args.split_keys,
        args.image_key_path,
        _layout(args),
        pixel_size=args.pixel_size,
    )


def _nxs2tiff(args: argparse.Namespace) -> None:
    _run(args, _hdf5_request(args, (Product(32 if args.fp else None),)))


def _nxs2tiffux(args: argparse.Namespace) -> None:
    _run(args, _hdf5_request(args, _products(args)))


def _tiff2tiffux(args: argparse.Namespace) -> None:
    pattern = args.output_pattern or args.input_pattern
    check_pattern(pattern, "-o/--output-pattern" if args.output_pattern else "-i/--input-pattern")
    source = SourceRequest(
        args.input_dir, "tiff", input_pattern=args.input_pattern, begin=args.begin, stop=args.stop, crop=_crop(args)
    )
    _refuse_overwriting_inputs(source, args.output_dir, pattern)
    products = _products(args)
    _run(
        args,
        Request(
            source,
            products,
            _destination(args, products),
            pattern,
            layout=_layout(args),
            pixel_size=args.pixel_size,
        ),
    )


def _refuse_overwriting_inputs(source: SourceRequest, output_dir: str, pattern: str) -> None:
    """Writing into the input directory is fine only if no output name is an input name."""
    if os.path.isfile(source.path):  # a stack: no output may be the stack itself
        with source.open() as opened:
            clash = next(
                (
                    i
                    for i in range(opened.begin, opened.stop)
                    if os.path.exists(candidate := os.path.join(output_dir, format_name(pattern, i)))
                    and os.path.samefile(candidate, source.path)
                ),
                None,
            )
        if clash is not None:
            raise TomotiffError(
                f"output {format_name(pattern, clash)} would overwrite the input stack {source.path}; "
                "give another OUTPUT_DIR or -o/--output-pattern"
            )
        return
    if not os.path.isdir(output_dir) or not os.path.isdir(source.path) or not os.path.samefile(source.path, output_dir):
        return
    with source.open() as opened:
        begin, stop = opened.begin, opened.stop
    inputs = {format_name(source.input_pattern, i) for i in range(begin, stop)}
    clash = next((i for i in range(begin, stop) if format_name(pattern, i) in inputs), None)
    if clash is not None:
        raise TomotiffError(
            f"output {format_name(pattern, clash)} would overwrite an input file in {output_dir}; "
            "give another OUTPUT_DIR or a different -o/--output-pattern"
        )


def _verify(args: argparse.Namespace) -> None:
    problems = verify(args.directory)
    for problem in problems:
        print(f"{args.directory}: {problem}")
    if problems:
        raise TomotiffError(
            f"{len(problems)} problem(s) in {args.directory}, the first: {problems[0]}; "
            "rerun the extraction to restore them"
        )
    print(f"{args.directory}: all images present and matching manifest.json")


def _tomotiff_parser() -> argparse.ArgumentParser:
    parser = _parser(
        "tomotiff", "tomotiff utilities.", "the extraction commands are nxs2tiff, nxs2tiffux and tiff2tiffux"
    )
    parser.add_argument("-V", "--version", action="version", version=_version("tomotiff"))
    commands = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    check = commands.add_parser(
        "verify",
        help="check a directory against its manifest.json",
        description="Check that every image listed in DIR/manifest.json is there, "
        "with the checksum recorded when it was written.",
    )
    check.add_argument(
        "directory",
        metavar="DIR",
        help="an output directory of nxs2tiff, nxs2tiffux, tiff2tiffux or the workflow "
        "(results/SCAN/DEPTH), holding manifest.json",
    )
    report = commands.add_parser(
        "report",
        help="an HTML page showing each output's window, clipping and images, to check them by eye",
        description="Write one self-contained HTML file (opens from disk in any browser, fetches nothing) "
        "showing, per scan and output, the window and how it was chosen, the reference image's "
        "histogram with lo and hi, the pixels clipped in each image, thumbnails, a slice across "
        "the images, the workflow's stats.json and what verify finds. Made from the files "
        "written only; large outputs are sampled.",
    )
    report.add_argument(
        "directories",
        nargs="+",
        metavar="DIR",
        help="an output directory (holding manifest.json), a scan of the workflow (results/SCAN) "
        "or the workflow's results/",
    )
    report.add_argument(
        "-o",
        "--output",
        default="report.html",
        metavar="FILE",
        help="the HTML file to write (default: report.html in the current directory)",
    )
    report.add_argument(
        "-j",
        "--workers",
        type=int,
        default=engine.default_workers(),
        metavar="N",
        help="processes drawing scans at once (default: this machine's cores up to 8)",
    )
    return parser


class _ReaderMayLeave:
    """A text stream (stdout, stderr) that outlives its reader, as in ``nxs2tiffux ... | head -1``:
    the first write that fails with EPIPE points the descriptor at /dev/null (what the Python docs
    advise for SIGPIPE) and the run carries on. The lines are a courtesy; the images are the
    point, and a reader that has seen enough does not want them cut short."""

    def __init__(self, stream: TextIO) -> None:
        self._stream = stream

    def write(self, text: str) -> int:
        try:
            return self._stream.write(text)
        except BrokenPipeError:
            self._to_devnull()
            return len(text)

    def flush(self) -> None:
        try:
            self._stream.flush()
        except BrokenPipeError:
            self._to_devnull()

    def _to_devnull(self) -> None:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, self._stream.fileno())
        os.close(devnull)

    def __getattr__(self, name: str) -> object:  # the rest of the stream (isatty, fileno, encoding)
        return getattr(self._stream, name)


def _main(
    parser: argparse.ArgumentParser, command: Callable[[argparse.Namespace], None], argv: list[str] | None
) -> int:
    streams = sys.stdout, sys.stderr
    sys.stdout, sys.stderr = (
        _ReaderMayLeave(open(os.devnull, "w") if stream is None else stream)  # None: >&-
        for stream in streams
    )
    try:
        args = parser.parse_args(argv)
        command(args)
    except TomotiffError as exc:
        print(f"{parser.prog}: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print(f"{parser.prog}: interrupted; finished images are complete, rerun to write the rest", file=sys.stderr)
        return 130
    finally:
        sys.stdout.flush()  # what is still buffered, while a departed reader is harmless
        sys.stdout, sys.stderr = streams
    return 0


def nxs2tiff_main(argv: list[str] | None = None) -> int:
    return _main(_nxs2tiff_parser(), _nxs2tiff, argv)


def nxs2tiffux_main(argv: list[str] | None = None) -> int:
    return _main(_nxs2tiffux_parser(), _nxs2tiffux, argv)


def tiff2tiffux_main(argv: list[str] | None = None) -> int:
    return _main(_tiff2tiffux_parser(), _tiff2tiffux, argv)


def tomotiff_main(argv: list[str] | None = None) -> int:
    def command(args: argparse.Namespace) -> None:
        if args.command == "report":
            from tomotiff.report import write_report  # matplotlib loads for a report only

            print(write_report(args.directories, args.output, _check_workers(args.workers)))
        else:
            _verify(args)

    return _main(_tomotiff_parser(), command, argv)
