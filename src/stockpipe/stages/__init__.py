"""Pure stages: functions on data. They never open files, sockets or engines."""
