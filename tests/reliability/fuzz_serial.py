"""Hostile input builders for the serial-line devices: NMEA receivers, AT modems, VE.Direct chargers.

Each builder starts from what a real device sends (docs/protocols.md transcripts) and damages it
the way a line does or a broken firmware would: fields replaced by junk, dropped or added, a
checksum recomputed over the damage (so the decoder, not only the checksum test, sees it) or left
wrong, bytes flipped, lines cut, glued or flooded, noise without line ends.
"""

from __future__ import annotations

from drivers.gps.nmea import checksum
from tests.reliability.fuzz_mutate import Mutator

# -- NMEA 0183 ------------------------------------------------------------------------------------

NMEA_SENTENCES = [
    "GPGGA,123519.00,4852.3452,N,00221.1234,E,1,08,0.9,45.3,M,47.1,M,,",
    "GNRMC,123519.00,A,4852.3452,N,00221.1234,E,12.4,084.4,150624,,,A",
    "GPVTG,084.4,T,,M,12.4,N,23.0,K,A",
    "GPVTG,084.4,,12.4,23.0",
    "GPGSA,A,3,04,05,09,12,24,,,,,,,,2.5,1.3,2.1",
    "GLGSV,2,1,08,04,40,083,46,05,12,150,40,09,60,300,44,12,25,045,41",
    "GPZDA,123519.00,15,06,2024,00,00",
    "PUBX,00,123519.00,4852.3452,N,00221.1234,E,45.3,G3,2.1,2.0,0.1,77.5,0.0,,0.9,1.2,0.8,9,0,0",
    "GPTXT,01,01,02,ANTSTATUS=OK",
]
ADDRESSES = [
    "GPGGA",
    "GNGGA",
    "GPRMC",
    "BDRMC",
    "GPVTG",
    "GNGSA",
    "GAGSV",
    "PUBX",
    "P",
    "GP",
    "G",
    "",
    "GP,GGA",
]


def nmea_line(body: str, good_checksum: bool = True, end: str = "\r\n") -> bytes:
    written = checksum(body) if good_checksum else (checksum(body) + 1) % 256
    return f"${body}*{written:02X}{end}".encode("utf-8", errors="surrogatepass")


def damaged_sentence(m: Mutator) -> str:
    fields = m.pick(NMEA_SENTENCES).split(",")
    for _ in range(m.rng.randint(1, 3)):
        at = m.rng.randrange(len(fields))
        action = m.rng.randrange(5)
        if action <= 1:
            fields[at] = m.word()
        elif action == 2 and len(fields) > 1:
            del fields[at]
        elif action == 3:
            fields[at:at] = [m.word() for _ in range(m.rng.randint(1, 30))]
        else:
            fields[0] = m.pick(ADDRESSES)
    return ",".join(fields)


def nmea_stream(seed: int) -> list[bytes]:
    """Up to 40 receiver lines, most of them damaged."""
    m = Mutator(seed)
    lines = []
    for _ in range(m.rng.randint(1, 40)):
        roll = m.rng.random()
        if roll < 0.2:
            lines.append(nmea_line(m.pick(NMEA_SENTENCES)))
        elif roll < 0.7:
            lines.append(
                nmea_line(damaged_sentence(m), good_checksum=m.chance(0.85), end=m.pick(["\r\n", "\n", ""]))
            )
        elif roll < 0.85:
            lines.append(m.mutate_bytes(nmea_line(m.pick(NMEA_SENTENCES))))
        elif roll < 0.9:
            lines.append(nmea_line(m.pick(NMEA_SENTENCES))[:-5] + nmea_line(m.pick(NMEA_SENTENCES)))  # glued
        elif roll < 0.95:
            lines.append(m.rng.randbytes(m.rng.choice([1, 80, 161, 4000])))  # noise, wrong baud rate
        else:
            lines.append(b"$" + b"," * m.rng.choice([10, 159, 3000]) + b"*00")
    return lines


def nmea_flood(size: int) -> list[bytes]:
    """``size`` bytes of a realistic mix: epochs, damaged sentences, noise lines."""
    m = Mutator(size)
    lines: list[bytes] = []
    total = 0
    while total < size:
        stream = nmea_stream(m.rng.randrange(2**32))
        lines += stream
        total += sum(map(len, stream))
    return lines


# -- AT modems ------------------------------------------------------------------------------------

AT_ANSWERS = {
    'AT+QENG="servingcell"': [
        '+QENG: "servingcell","NOCONN","LTE","FDD",208,01,1A2B3C4,318,6300,20,3,3,9C41,-97,-11,-68,9,8,-,34'
    ],
    "AT+QENG=EN-DC": ['+QENG: "servingcell","NOCONN"',
                      '+QENG: "LTE","FDD",208,01,1A2B3C4,318,6300,20,3,3,9C41,-97,-11,-68,9,8,-,34',
                      '+QENG: "NR5G-NSA",208,01,100,-95,20,-11,627264,78,12,1'],
    "AT^HCSQ?": ['^HCSQ: "LTE",46,52,151,21'],
    "AT+CEREG?": ['+CEREG: 2,1,"9C41","1A2B3C4",7'],
    "AT+CREG?": ['+CREG: 2,5,"00C3","1A2B",2'],
    "AT+COPS?": ['+COPS: 0,2,"20801",7'],
    "AT+CESQ": ["+CESQ: 99,99,255,255,20,52"],
    "AT+CSQ": ["+CSQ: 20,99"],
    "AT+CGSN": ['+CGSN: "867698041234567"'],
    "AT+QCCID": ["+QCCID: 89330123456789012345F"],
    "ATI": ["Quectel", "EC25", "Revision: EC25EFAR06A06M4G"],
    "AT!GSTATUS?": ["!GSTATUS:", "System mode:   LTE        \tPS state:    Attached", "LTE band:      B20",
                    "LTE Rx chan:   6300", "PCC RxM RSSI:  -66\t\tRSRP (dBm):  -95",
                    "PCC RxD RSSI:  -70\t\tRSRP (dBm):  -99", "TAC:         9C41 (40001)",
                    "RSRQ (dB):     -11.0\t\tCell ID:     01A2B3C4 (27439044)", "SINR (dB):     9.4"],
}  # fmt: skip
URCS = [
    "RING",
    "+CEREG: 1",
    '+CEREG: 1,"9C41","1A2B3C4",7',
    '^HCSQ: "LTE",46,52,151,21',
    "+QIND: SMS DONE",
    "RDY",
]
FINALS = ["OK", "ERROR", "+CME ERROR: 10", "+CMS ERROR: 500", "NO CARRIER", "+CME ERROR: SIM busy"]


def damaged_at_line(m: Mutator, line: str) -> str:
    head, sep, rest = line.partition(":")
    fields = rest.split(",")
    for _ in range(m.rng.randint(1, 3)):
        at = m.rng.randrange(len(fields))
        action = m.rng.randrange(5)
        if action <= 2:
            fields[at] = m.pick([m.word(), f'"{m.word()}"', '"', ""])
        elif action == 3:
            fields[at:at] = [m.word() for _ in range(m.rng.randint(1, 40))]
        elif len(fields) > 1:
            del fields[max(1, at) :]
    if m.chance(0.1):
        head = m.pick(["+QENG", "^HCSQ", "+CEREG", "+COPS", "+csq", "+CME ERROR", "!GSTATUS", ""])
    return head + (sep or ":") + ",".join(fields)


def at_answer(seed: int) -> tuple[str, list[str]]:
    """A command and the information lines a damaged modem answers it with."""
    m = Mutator(seed)
    command = m.pick(list(AT_ANSWERS))
    lines: list[str] = []
    for line in AT_ANSWERS[command]:
        lines.append(damaged_at_line(m, line) if m.chance(0.6) else line)
    for _ in range(m.rng.randrange(3)):
        lines.insert(
            m.rng.randrange(len(lines) + 1), m.pick([*URCS, m.word(), damaged_at_line(m, m.pick(URCS))])
        )
    if m.chance(0.1):  # a different command's answer: the parser must not take it for its own
        lines.extend(AT_ANSWERS[m.pick(list(AT_ANSWERS))])
    return command, lines


def at_wire(seed: int) -> tuple[str, bytes]:
    """A command and the raw bytes a damaged modem sends back, ending in OK."""
    m = Mutator(seed)
    command, lines = at_answer(seed)
    parts = [command] if m.chance(0.3) else []  # echo (ATE1)
    parts += lines
    if m.chance(0.2):
        parts.insert(m.rng.randrange(len(parts) + 1), m.pick(FINALS))
    data = b"".join(
        p.encode("utf-8", "surrogatepass") + m.pick([b"\r\n", b"\r", b"\n", b"\n\r"]) for p in parts
    )
    if m.chance(0.4):
        data = m.mutate_bytes(data)
    if m.chance(0.05):
        data += m.rng.randbytes(m.rng.choice([100, 4097, 9000])).replace(b"\r", b"").replace(b"\n", b"")
    return command, data + b"\r\nOK\r\n"


def at_flood(size: int) -> bytes:
    """``size`` bytes of answer lines, empty lines and noise: the channel's cost per byte and per line."""
    m = Mutator(size)
    parts = []
    total = 0
    while total < size:
        part = at_wire(m.rng.randrange(2**32))[1][:-6] + b"\r" * m.rng.randrange(40)
        parts.append(part)
        total += len(part)
    return b"".join(parts)[:size]


# -- VE.Direct --------------------------------------------------------------------------------------

VE_BLOCKS = [
    {"PID": "0xA053", "FW": "159", "SER#": "HQ2132ABCDE", "V": "13250", "I": "-1200", "VPV": "18760",
     "PPV": "0", "CS": "5", "MPPT": "0", "OR": "0x00000000", "ERR": "0", "LOAD": "ON", "H19": "10234"},
    {"PID": "0xA389", "V": "12650", "I": "-3000", "P": "-38", "CE": "-12500", "SOC": "876", "TTG": "-1"},
    {"PID": "0xA332", "V": "13600", "I": "4500", "CS": "3", "OR": "0x00000001", "ERR": "0"},
    {"PID": "0xA231", "MODE": "2", "CS": "9", "AC_OUT_V": "23000", "AC_OUT_I": "12", "V": "12800"},
    {"H1": "-35000", "H2": "-12000", "H4": "12", "H9": "86400", "SOC": "---", "Alarm": "OFF"},
]  # fmt: skip
HEX_FRAMES = [b":51641F9\n", b":A0102000543\n", b":7F0ED0071\n", b":"]


def ve_block(fields: dict[str, str], good_checksum: bool = True) -> bytes:
    body = b"".join(b"\r\n" + label.encode("latin-1", "replace") + b"\t" + value.encode("latin-1", "replace")
                    for label, value in fields.items()) + b"\r\nChecksum\t"  # fmt: skip
    return body + bytes([(-sum(body) + (0 if good_checksum else 1)) % 256])


def ve_stream(seed: int) -> list[bytes]:
    """Blocks with damaged labels and values, HEX frames in between, noise, cut into random chunks."""
    m = Mutator(seed)
    data = b""
    for _ in range(m.rng.randint(1, 6)):
        fields = dict(m.pick(VE_BLOCKS))
        for _ in range(m.rng.randrange(4)):
            label = m.pick([*fields, m.word()[:12], "Checksum", ""])
            fields[label] = m.pick([m.word(), m.word()[:32], "x" * m.rng.choice([32, 33, 200])])
        if m.chance(0.05):
            fields.update({f"L{i}": str(i) for i in range(m.rng.choice([63, 64, 65, 300]))})
        wire = ve_block(fields, good_checksum=m.chance(0.8))
        if m.chance(0.3):
            at = m.rng.randrange(len(wire))
            wire = wire[:at] + m.pick(HEX_FRAMES) + wire[at:]
        data += m.mutate_bytes(wire) if m.chance(0.3) else wire
    if m.chance(0.1):
        data = m.rng.randbytes(m.rng.randrange(600)) + data
    cuts = sorted(m.rng.randrange(len(data) + 1) for _ in range(m.rng.randrange(5)))
    return [data[a:b] for a, b in zip([0, *cuts], [*cuts, len(data)], strict=True)]


def ve_flood(size: int) -> bytes:
    m = Mutator(size)
    data = bytearray()
    while len(data) < size:
        data += b"".join(ve_stream(m.rng.randrange(2**32)))
    return bytes(data[:size])
