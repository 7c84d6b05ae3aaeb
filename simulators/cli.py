"""busagent-sim: run the device simulators (`devices`), drive them (`do`), simulate a day (`day`)."""

from __future__ import annotations

import argparse
import contextlib
import signal
import sys
import tempfile
import threading
from pathlib import Path
from types import FrameType

from agent.logs import setup_logging
from simulators.control import ControlServer, control_socket_for, send


def _devices(args: argparse.Namespace) -> int:
    from simulators.backend import SimulatedBackend
    from simulators.devices import SimulatedBus

    config_path = Path(args.write_config).resolve()
    workdir = Path(args.workdir) if args.workdir else Path(tempfile.mkdtemp(prefix="busagent-sim-"))
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        del signum, frame
        stop.set()

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    with contextlib.ExitStack() as stack:
        bus = stack.enter_context(SimulatedBus(workdir, vehicle_id=args.vehicle, modem_variant=args.modem))
        text = bus.config_text()
        if not args.no_backend:
            backend = stack.enter_context(SimulatedBackend(workdir / "backend"))
            text += "\n" + backend.config_text()
            print(f"broker {backend.broker.url}, collector database {backend.db_path}", flush=True)
        control = ControlServer(control_socket_for(config_path), bus.apply)
        control.start()
        try:
            # Write to a temporary name first: whoever waits for the file never reads half of it.
            tmp = config_path.with_name(config_path.name + ".tmp")
            tmp.write_text(text)
            tmp.replace(config_path)
            print(f"simulated devices running in {workdir}", flush=True)
            print(f"agent config: {config_path}", flush=True)
            print(
                f"change them with: busagent-sim do --config {config_path} ACTION (Ctrl-C to stop)",
                flush=True,
            )
            stop.wait()
        finally:
            control.stop()
            config_path.unlink(missing_ok=True)
    print("simulated devices stopped", flush=True)
    return 0


def _do(args: argparse.Namespace) -> int:
    sock = control_socket_for(args.config)
    try:
        answer = send(sock, " ".join(args.action))
    except OSError as exc:
        print(f"no simulator answers on {sock}: {exc.strerror or exc}", file=sys.stderr)
        print(f"start one with: busagent-sim devices --write-config {args.config}", file=sys.stderr)
        return 3
    if not answer.get("ok"):
        print(f"error: {answer.get('error')}", file=sys.stderr)
        return 1
    print(answer.get("done"))
    return 0


def _day(args: argparse.Namespace) -> int:
    from simulators.broker import BrokerError
    from simulators.day import run_day
    from simulators.gpsd import GpsdStartError
    from simulators.scenario import ScenarioError

    if args.speedup <= 0:
        print(f"--speedup must be positive, got {args.speedup}", file=sys.stderr)
        return 2
    try:
        summary = run_day(args.scenario, speedup=args.speedup, out_dir=Path(args.out), progress=_say)
    except ScenarioError as exc:
        for line in exc.errors:
            print(line, file=sys.stderr)
        return 2
    except (BrokerError, GpsdStartError, OSError) as exc:
        # A simulator that cannot start (a Debian package missing, a port taken, a full disk).
        print(f"busagent-sim day: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("busagent-sim day: interrupted; the partial run is in " + args.out, file=sys.stderr)
        return 130
    out = Path(args.out).resolve()
    print(f"summary: {out / 'summary.json'}")
    print(f"map: {out / 'stops.html'} (open it in a web browser: xdg-open {out / 'stops.html'})")
    return 0 if summary["ok"] else 1


def _say(line: str) -> None:
    print(line, flush=True)


ACTIONS_HELP = """actions:
  unplug-shore | plug-shore | battery VOLTS SOC%
  paper-out | paper-jam | toner-low | printer-ok | printer-off | printer-on
  modem-unplug | modem-replug | modem-silent | modem-resume | signal RSRP RSRQ SINR
  gps-lose | gps-regain | move LAT LON | speed KMH TRACK_DEG"""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="busagent-sim", description="busagent hardware simulators")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    devices = sub.add_parser("devices", help="start every device simulator and write an agent config")
    devices.add_argument("--write-config", required=True, metavar="PATH")
    devices.add_argument("--workdir", metavar="DIR", help="where ptys and files live (default: a temp dir)")
    devices.add_argument("--vehicle", default="bus-sim-01")
    devices.add_argument(
        "--modem", default="quectel", choices=["quectel", "quectel18", "sierra", "huawei", "generic"]
    )
    devices.add_argument(
        "--no-backend",
        action="store_true",
        help="devices only: no simulated portals, speed test, broker and collector",
    )
    devices.set_defaults(func=_devices)

    do = sub.add_parser(
        "do",
        help="change the running simulators",
        epilog=ACTIONS_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    do.add_argument("--config", required=True, metavar="PATH", help="the config written by `devices`")
    do.add_argument("action", nargs="+")
    do.set_defaults(func=_do)

    day = sub.add_parser("day", help="a whole simulated service day, end to end")
    day.add_argument("scenario")
    day.add_argument("--speedup", type=float, default=300.0, help="simulated seconds per real second")
    day.add_argument("--out", default="out", help="where summary.json and the maps go (default ./out)")
    day.set_defaults(func=_day)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    setup_logging("warning" if args.command == "day" else "info", sys.stderr)
    result: int = args.func(args)
    return result


if __name__ == "__main__":
    sys.exit(main())
