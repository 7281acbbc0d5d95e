"""The parts of `modelformats.download.download`, one job each; `modelformats.download` is the entry point.

report.py      DownloadReport, PlannedFile: what was (or would be) fetched, joined and written
section.py     the plan's download section resolved under its root (paths, hashes, sizes)
targets.py     what to fetch from the Hub: URL, size and expected hash of each planned file
state.py       partial files, the record of verified files, cleaning of leftovers
fetching.py    fetch one file into place: resumable, retried, verified
local.py       copy a planned item's files from a local model directory
join.py        join `.partXofY` splits into a GGUF; check every model GGUF is whole
converting.py  run the plan's GGUF -> safetensors conversion after download
"""
