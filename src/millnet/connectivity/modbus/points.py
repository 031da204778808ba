"""What the registry is told about a Modbus point."""

from __future__ import annotations

from millnet.connectivity.modbus.spec import RegisterSpec
from millnet.model import DataType, PointSpec

_TYPES = {"int16": DataType.INT16, "uint16": DataType.UINT16, "int32": DataType.INT32,
          "uint32": DataType.UINT32, "float32": DataType.FLOAT, "float64": DataType.DOUBLE,
          "bool": DataType.BOOLEAN}


def point_spec(register: RegisterSpec) -> PointSpec:
    """A scaled integer is stored as a double (its engineering value has a fraction)."""
    datatype = _TYPES[register.value_type]
    if (register.scale != 1.0 or register.offset != 0.0) and datatype is not DataType.BOOLEAN:
        datatype = DataType.DOUBLE
    return PointSpec(register.point, datatype, unit=register.unit,
                     description=f"{register.table} {register.address}")
