"""SQL, one module per resource: functions take the connection first and return Structs."""
