package replayctl

import (
	"context"
	"flag"
	"fmt"
	"io"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/rustybalancer/rb/pkg/replay"
)

// export is `rb export`: a range of the streams to NDJSON.
func (c *cmd) export(ctx context.Context, args []string) int {
	fs := flag.NewFlagSet(c.name, flag.ContinueOnError)
	fs.SetOutput(c.io.Stderr)
	var src source
	src.register(fs)
	out := "-"
	fs.StringVar(&out, "o", "-", "write to this `FILE` (gzip when it ends in .gz; - is standard output)")
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "usage: rb export [-since 10m | -from T [-to T] | -seq A:B] [-streams RB_STATS,RB_DECISIONS] [-o file.ndjson[.gz]]\n\n"+
			"Writes the app's events of the range, merged by stored time, one JSON object per line:\n"+
			"{\"stream\",\"subject\",\"seq\",\"data\":<event>}, after a first line describing the export.\n\n")
		fs.PrintDefaults()
	}
	if done, code := c.parse(fs, args); done {
		return code
	}
	return c.exit(c.doExport(ctx, src, out))
}

func (c *cmd) doExport(ctx context.Context, src source, out string) (err error) {
	r, err := src.rangeOf(c.io.Now())
	if err != nil {
		return err
	}
	streams, err := src.streamList()
	if err != nil {
		return err
	}
	cfg, err := c.baseConfig()
	if err != nil {
		return err
	}
	app := src.app
	if app == "" {
		app = cfg.App
	}
	b, err := c.connect(ctx, cfg, src.natsURL)
	if err != nil {
		return err
	}
	defer b.Close()

	var w io.Writer = c.io.Stdout
	gz := false
	var tmp *os.File
	if out != "-" {
		// Write next to the target and rename at the end: an interrupted
		// export leaves no half file under the name asked for.
		tmp, err = os.CreateTemp(filepath.Dir(out), "."+filepath.Base(out)+".*")
		if err != nil {
			return fmt.Errorf("export: %w", err)
		}
		defer func() {
			if err != nil {
				tmp.Close()
				os.Remove(tmp.Name())
			}
		}()
		w, gz = tmp, replay.IsGzipName(out)
	}
	ew := replay.NewWriter(w, gz)
	st, err := replay.Export(ctx, b.JetStream(), app, streams, r, ew)
	if err != nil {
		return fmt.Errorf("export: %w", err)
	}
	if err := ew.Close(); err != nil {
		return fmt.Errorf("export: %w", err)
	}
	if tmp != nil {
		if err := tmp.Close(); err != nil {
			return fmt.Errorf("export: %w", err)
		}
		if err := os.Rename(tmp.Name(), out); err != nil {
			return fmt.Errorf("export: %w", err)
		}
	}
	var parts []string
	for _, s := range slices.Sorted(maps.Keys(st.Written)) {
		parts = append(parts, fmt.Sprintf("%s %d", s, st.Written[s]))
	}
	dest := out
	if out == "-" {
		dest = "standard output"
	}
	msg := fmt.Sprintf("%s: app %s: wrote %s to %s", c.name, app, strings.Join(parts, ", "), dest)
	if len(parts) == 0 {
		msg = fmt.Sprintf("%s: app %s: no events in the range (wrote only the header to %s)", c.name, app, dest)
	}
	if st.NotJSON > 0 {
		msg += fmt.Sprintf("; skipped %d messages that are not JSON", st.NotJSON)
	}
	fmt.Fprintln(c.io.Stderr, msg)
	return nil
}
