"""The road from bytes to events that `analyze` and `watch` share.

formats    which format a file is, its host, its parser context (VM from the file name)
linereader a file's bytes as records: chunks of whole lines, the long-line cut, the offset
           a resume may start at
classify   records as events: learn the VM links, match the catalogue, drop a message seen
           twice (file and journal), resolve each event's VM

Only the ends differ: a directory walk (`pipeline`) or inotify and the journal's wait
(`follow`, `daemon`).
"""
