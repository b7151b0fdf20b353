"""MindSpore Serving's argument checks of its server start API, with its exact messages
(each a RuntimeError, as MindSpore Serving raised them). Pure functions, no processes."""

from __future__ import annotations

import re
from collections.abc import Sequence

#: The server tags MindSpore Serving's address messages name.
GRPC_TAG = "Serving gRPC"
RESTFUL_TAG = "RESTful server"
DEC_KEY_LENGTHS = (16, 24, 32)
#: The decryption modes MindSpore Serving's start calls accept.
MS_SERVING_DEC_MODES = ("AES-GCM", "AES-CBC")
_PORT_PREFIX = re.compile(r"\s*[+-]?\d+")  # what C++ std::stoi reads


def check_str(name: str, value: object) -> str:
    """A non-empty str."""
    if not isinstance(value, str):
        raise RuntimeError(f"Parameter '{name}' should be str, but actually {type(value)}")
    if not value:
        raise RuntimeError(f"Parameter '{name}' should not be empty str")
    return value


def check_bool(name: str, value: object) -> bool:
    """A bool."""
    if not isinstance(value, bool):
        raise RuntimeError(f"Parameter '{name}' should be bool, but actually {type(value)}")
    return value


def check_int(
    name: str,
    value: object,
    minimum: int | None = None,
    maximum: int | None = None,
    is_tuple_item: bool = False,
) -> int:
    """An int (not a bool) within the bounds given."""
    prefix = (
        f"The item value '{value}' in parameter '{name}'"
        if is_tuple_item
        else (f"Parameter '{name}'")
    )
    if isinstance(value, bool) or not isinstance(value, int):
        raise RuntimeError(f"{prefix} should be int, but actually {type(value)}")
    low = minimum is not None and value < minimum
    high = maximum is not None and value > maximum
    if (low or high) and minimum is not None and maximum is not None:
        raise RuntimeError(f"{prefix} should be in range [{minimum},{maximum}]")
    if low:
        raise RuntimeError(f"{prefix} should be >= {minimum}")
    if high:
        raise RuntimeError(f"{prefix} should be <= {maximum}")
    return value


def check_int_tuple(name: str, values: object, minimum: int | None = None) -> tuple[int, ...]:
    """An int, or a list or tuple of distinct ints, as a tuple."""
    if isinstance(values, int):
        values = (values,)
    if not isinstance(values, (tuple, list)):
        raise RuntimeError(
            f"Parameter '{name}' should be int or tuple/list of int, but actually {type(values)}"
        )
    checked: list[int] = []
    for item in values:
        if item in checked:
            raise RuntimeError(
                f"The item value '{item}' in parameter '{name}' should not be repeated"
            )
        checked.append(check_int(name, item, minimum, is_tuple_item=True))
    return tuple(checked)


def check_decryption(dec_key: object, dec_mode: object) -> str:
    """A MindIR key (None, or bytes of 16, 24 or 32) and a mode MindSpore Serving accepts (the
    mode is returned)."""
    if dec_key is not None:
        if not isinstance(dec_key, bytes):
            raise RuntimeError(f"Parameter 'dec_key' should be bytes, but actually {type(dec_key)}")
        if not dec_key:
            raise RuntimeError("Parameter 'dec_key' should not be empty bytes")
        if len(dec_key) not in DEC_KEY_LENGTHS:
            raise RuntimeError(
                f"Parameter 'dec_key' length {len(dec_key)} expected to be 16, 24 or 32"
            )
    mode = check_str("dec_mode", dec_mode)
    if mode not in MS_SERVING_DEC_MODES:
        raise RuntimeError("Parameter 'dec_mode' expected to be 'AES-GCM' or 'AES-CBC'")
    return mode


def check_address(address: str, tag: str, allow_unix: bool = False) -> None:
    """HOST:PORT with a port in 1..65535 (or, `allow_unix`, unix:PATH)."""
    if allow_unix and address.startswith("unix:"):
        if address == "unix:":
            raise RuntimeError("Serving Error: Empty grpc server unix domain socket address")
        return
    position = address.rfind(":")
    if position < 0:
        raise RuntimeError(f"Serving Error: The format of the {tag} address '{address}' is illegal")
    if position in (0, len(address) - 1):
        raise RuntimeError(f"Serving Error: Missing ip or port of the {tag} address '{address}'")
    digits = _PORT_PREFIX.match(address[position + 1 :])
    if digits is None:
        raise RuntimeError(
            f"Serving Error: The type of {tag} address '{address}' port is not a number"
        )
    if not 1 <= int(digits.group()) <= 65535:
        raise RuntimeError(
            f"Serving Error: The port of the {tag} address '{address}' is out of legal range "
            "[1 ~ 65535]"
        )


def as_sequence(value: object, kinds: tuple[type, ...], name: str) -> Sequence[object]:
    """`value` as a tuple when it is one of `kinds`, else the list or tuple it is."""
    if isinstance(value, kinds):
        return (value,)
    if not isinstance(value, (tuple, list)):
        raise RuntimeError(
            f"Parameter '{value}' should be {name}, list or tuple of {name}, but actually "
            f"{type(value)}"
        )
    return value
