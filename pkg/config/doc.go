package config

import (
	"fmt"
	"io"
	"strings"
)

// WriteMarkdown writes the table of every variable (name, flag, default,
// allowed values, runtime-tunable, meaning) for docs/config.md.
func WriteMarkdown(w io.Writer) error {
	def := Default()
	if _, err := fmt.Fprintln(w, "| variable | flag | default | allowed | runtime | meaning |\n|---|---|---|---|---|---|"); err != nil {
		return err
	}
	for _, v := range vars() {
		d := v.get(&def)
		if d == "" {
			d = "(empty)"
		}
		rt := ""
		if v.Runtime {
			rt = "yes"
		}
		if _, err := fmt.Fprintf(w, "| `%s` | `-%s` | `%s` | %s | %s | %s |\n",
			v.Name, v.Flag(), d, strings.ReplaceAll(v.Allowed, "|", "\\|"), rt, v.Help); err != nil {
			return err
		}
	}
	return nil
}
