// Package replay replays recorded events through the same pure code as the
// live services — pkg/score for every Sample, pkg/scale for every score,
// lifecycle fact and proxy report, with the ticks of scale.Ticker — on a
// clock driven by event times, to reproduce the recorded decisions exactly or
// to ask what other parameters would have done.
//
// The parts, each in its own file:
//
//   - the export format (record.go): one JSON object per line,
//     {"stream","subject","seq","data":<envelope>}, gzip when the file name
//     ends in .gz; Writer writes it, ReadFile/Load read it (ndjson.go);
//   - the JetStream source (stream.go): Export copies a time or sequence range
//     of streams to a Writer, Fetch loads the same range as a Recording;
//   - the Recording (recording.go): Samples kept compact in stream order and
//     every other event merged into one timeline by event time;
//   - the engine (engine.go, simulate.go, model.go, metrics.go): Prepare
//     scores the recording once; Prepared.Faithful replays it with the
//     recorded facts and config and compares the decisions; Prepared.Run
//     replays one Candidate (overrides) as a what-if, simulating the
//     consequences of its own decisions under a load model;
//   - sweeps and reports (sweep.go, report.go, svg.go): grids of candidates
//     run on all cores, ranked by a stated objective, written as a table,
//     CSV, JSON and an SVG plot.
//
// Everything that decides is pure: no clock, no I/O, no randomness, no map
// order. The readers and Export do I/O and nothing else. docs/replay.md
// describes the models, the simulation and their limits.
package replay
