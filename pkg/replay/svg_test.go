package replay

import (
	"bytes"
	"encoding/xml"
	"io"
	"strings"
	"testing"
)

func TestWriteSVG(t *testing.T) {
	t.Parallel()
	day := make([]int32, 86400)
	for i := range day {
		day[i] = int32(3 + i/20000)
	}
	tests := []struct {
		name   string
		series []PlotSeries
		// paths is the number of lines drawn; texts must appear, escaped.
		paths int
		texts []string
	}{
		{
			name: "a few minutes, names to escape",
			series: []PlotSeries{
				{Name: "recorded", Detail: "274 worker-s", Start: t0, Workers: []int32{1, 1, 2, 3, 3, 2, 1}},
				{Name: `#1 A<B & "C"`, Detail: "x", Start: t0, Workers: []int32{1, 2, 2, 2, 2, 2, 1}},
			},
			paths: 2,
			texts: []string{`#1 A<B & "C"`, "recorded", "274 worker-s"},
		},
		{
			name:   "a day",
			series: []PlotSeries{{Name: "recorded", Start: t0, Workers: day}, {Name: "#1", Start: t0, Workers: day}},
			paths:  2,
			texts:  []string{"2026-11-27 12:00:00"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var b bytes.Buffer
			if err := WriteSVG(&b, "Workers", "sub", tt.series); err != nil {
				t.Fatal(err)
			}
			dec := xml.NewDecoder(bytes.NewReader(b.Bytes()))
			paths, steps := 0, 0
			var text strings.Builder
			for {
				tok, err := dec.Token()
				if err == io.EOF {
					break
				}
				if err != nil {
					t.Fatalf("not well-formed: %v", err)
				}
				switch v := tok.(type) {
				case xml.StartElement:
					if v.Name.Local == "path" {
						paths++
						for _, a := range v.Attr {
							if a.Name.Local == "d" {
								steps += strings.Count(a.Value, "V")
							}
						}
					}
				case xml.CharData:
					text.Write(v)
				}
			}
			if paths != tt.paths {
				t.Errorf("%d lines, want %d", paths, tt.paths)
			}
			for _, want := range tt.texts {
				if !strings.Contains(text.String(), want) {
					t.Errorf("no %q in the text", want)
				}
			}
			// A step line has one segment per change, not one per second.
			if steps > 10 {
				t.Errorf("%d vertical segments", steps)
			}
		})
	}
	if err := WriteSVG(io.Discard, "x", "", nil); err == nil {
		t.Error("no error for no series")
	}
}
