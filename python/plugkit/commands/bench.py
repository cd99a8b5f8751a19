"""plugkit bench OP: time a plugin's kernels against PyTorch eager and torch.compile."""
from .. import bench
from ..errors import PlugkitError
from ..host import PluginLibrary
from ..ops import get_schema
from ..plugin_libraries import default_library_path
from ._common import parse_case


def register(subparsers):
    p = subparsers.add_parser("bench", help="benchmark a plugin against PyTorch eager and torch.compile (needs a GPU)")
    p.add_argument("op", help="op name (RMSNorm) or its folder under plugins/ (rms_norm)")
    p.add_argument("--library", dest="libraries", action="append",
                   help="plugin library (default: build/libplugkit_plugins.so); repeat it to compare builds, "
                        "timed in the same rounds")
    p.add_argument("--dtype", dest="dtypes", action="append", help="dtype to time (repeatable; default: the op's)")
    p.add_argument("--shapes", action="append", metavar="SHAPE;SHAPE",
                   help="input shapes of one case, e.g. '16384x8192;8192' (repeatable; default: the op's bench cases)")
    p.add_argument("--no-baselines", action="store_true", help="time only the plugin")
    p.add_argument("--warm", action="store_true",
                   help="replay one set of tensors (a case that fits in L2 is then read from L2); by default "
                        "launches rotate through copies that hold twice the L2 cache")
    p.add_argument("--profile", action="store_true",
                   help="time nothing: launch each contender once between cudaProfilerStart and Stop, in NVTX "
                        "ranges, for `ncu --profile-from-start off` or `nsys --capture-range=cudaProfilerApi`")
    p.add_argument("--tactics", action="store_true",
                   help="time every valid tactic of the plugin at each case, as TensorRT's builder does, and "
                        "print which one TensorRT would pick (the fastest) and by how much")
    p.add_argument("--overhead", action="store_true",
                   help="the CPU time of each enqueue: the plugin's own (timed in C++ around the call TensorRT "
                        "makes) and the Python round trip of PreparedPlugin.enqueue")
    p.add_argument("--iterations", type=int, default=1000, help="enqueues timed by --overhead")
    p.add_argument("--rounds", type=int, default=15, help="rounds of replays; times are medians over them")
    p.add_argument("--plugins-dir", help="folder of plugin folders (default: ./plugins)")
    p.set_defaults(func=main)


def main(args) -> int:
    schema = get_schema(args.op, args.plugins_dir)
    libraries = [PluginLibrary(path) for path in args.libraries or [default_library_path()]]
    if args.rounds < 1:
        raise PlugkitError(f"--rounds {args.rounds}: need at least one round")
    cases = [parse_case(s) for s in args.shapes] if args.shapes else None
    modes = [flag for flag in ("profile", "tactics", "overhead") if getattr(args, flag)]
    if len(modes) > 1:
        raise PlugkitError(f"--{' and --'.join(modes)} are separate runs; give one of them")
    if len(libraries) > 1 and modes and modes != ["profile"]:
        raise PlugkitError(f"--{modes[0]} times one library; give one --library")
    if args.tactics:
        print(f"plugkit bench {schema.name} --tactics: {libraries[0].path}")
        bench.run_tactics(libraries[0], schema, args.dtypes, cases, echo=print, rounds=args.rounds, warm=args.warm)
        return 0
    if args.overhead:
        if args.iterations < 1:
            raise PlugkitError(f"--iterations {args.iterations}: need at least one")
        print(f"plugkit bench {schema.name} --overhead: {libraries[0].path}")
        bench.run_overhead(libraries[0], schema, args.dtypes, cases, echo=print, iterations=args.iterations)
        return 0
    if args.profile:
        bench.require_cuda()
        for case, dtype in bench.cases_and_dtypes(schema, cases, args.dtypes):
            names = bench.profile_case(libraries, schema, case["inputs"], dtype, case.get("attrs"),
                                       not args.no_baselines, case.get("values"))
            print(f"profiled {';'.join('x'.join(map(str, s)) for s in case['inputs'])} {dtype}: {', '.join(names)}")
        return 0
    print(f"plugkit bench {schema.name}: {libraries[0].path}")
    labels = [f"#{i} us, vs compile, CI" for i in range(2, len(libraries) + 1)]
    for label, library in zip(labels, libraries[1:]):
        print(f"  {label.split()[0]}: {library.path}")
    bench.run(libraries, schema, args.dtypes, cases, not args.no_baselines, echo=print, rounds=args.rounds,
              warm=args.warm, labels=labels)
    return 0
