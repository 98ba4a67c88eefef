package replay

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
)

// Record is one line of an export: a stored message with the stream it came
// from, its subject and stream sequence, and its data (the event envelope)
// as stored. The line is {"stream":…,"subject":…,"seq":…,"data":{…}}.
type Record struct {
	Stream  string          `json:"stream"`
	Subject string          `json:"subject"`
	Seq     uint64          `json:"seq"`
	Data    json.RawMessage `json:"data"`
}

// ErrNotJSON is returned by Writer.Write for data that is not one JSON value:
// an export line must stay parseable, so such a message cannot be written.
var ErrNotJSON = errors.New("message data is not JSON")

// Writer writes Records as NDJSON, optionally gzip-compressed. It is not
// safe for concurrent use.
type Writer struct {
	bw   *bufio.Writer
	gz   *gzip.Writer
	line []byte
	n    int
}

// NewWriter writes to w, compressing with gzip when gz is true. Close flushes
// (and ends the gzip stream) but does not close w.
func NewWriter(w io.Writer, gz bool) *Writer {
	out := &Writer{}
	if gz {
		out.gz = gzip.NewWriter(w)
		out.bw = bufio.NewWriterSize(out.gz, 1<<20)
	} else {
		out.bw = bufio.NewWriterSize(w, 1<<20)
	}
	return out
}

// IsGzipName says whether a file name asks for gzip (it ends in .gz).
func IsGzipName(name string) bool { return strings.HasSuffix(name, ".gz") }

// Write writes one record on one line. Data must be a single JSON value
// without line breaks outside strings (what events.Encode produces); data
// with line breaks is compacted first.
func (w *Writer) Write(r Record) error {
	data := r.Data
	if !json.Valid(data) {
		return fmt.Errorf("write %s seq %d: %w", r.Stream, r.Seq, ErrNotJSON)
	}
	if containsNewline(data) {
		var buf bytes.Buffer
		if err := json.Compact(&buf, data); err != nil {
			return fmt.Errorf("write %s seq %d: %w", r.Stream, r.Seq, err)
		}
		data = buf.Bytes()
	}
	b := w.line[:0]
	b = append(b, `{"stream":`...)
	b = strconv.AppendQuote(b, r.Stream)
	b = append(b, `,"subject":`...)
	b = strconv.AppendQuote(b, r.Subject)
	b = append(b, `,"seq":`...)
	b = strconv.AppendUint(b, r.Seq, 10)
	b = append(b, `,"data":`...)
	b = append(b, data...)
	b = append(b, '}', '\n')
	w.line = b
	if _, err := w.bw.Write(b); err != nil {
		return fmt.Errorf("write export line: %w", err)
	}
	w.n++
	return nil
}

// Count is the number of records written.
func (w *Writer) Count() int { return w.n }

// Close flushes the buffer and ends the gzip stream, if any.
func (w *Writer) Close() error {
	if err := w.bw.Flush(); err != nil {
		return fmt.Errorf("flush export: %w", err)
	}
	if w.gz != nil {
		if err := w.gz.Close(); err != nil {
			return fmt.Errorf("finish gzip: %w", err)
		}
	}
	return nil
}

func containsNewline(b []byte) bool {
	for _, c := range b {
		if c == '\n' || c == '\r' {
			return true
		}
	}
	return false
}
