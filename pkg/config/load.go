package config

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"net/url"
	"os"
	"sort"
	"strings"

	"go.yaml.in/yaml/v3"
)

// EnvConfigFile names the optional YAML config file; the -config.file flag wins.
const EnvConfigFile = "RB_CONFIG_FILE"

// Problem is one bad variable.
type Problem struct {
	Var    string
	Value  string
	Source string // "environment", "file <path>", "flag -x", or "" for relations
	Reason string
}

func (p Problem) String() string {
	src := ""
	if p.Source != "" {
		src = " (from " + p.Source + ")"
	}
	if p.Value == "" {
		return fmt.Sprintf("%s%s: %s", p.Var, src, p.Reason)
	}
	return fmt.Sprintf("%s=%q%s: %s", p.Var, p.Value, src, p.Reason)
}

// Error lists every problem found while loading or validating.
type Error struct {
	Problems []Problem
}

func (e *Error) Error() string {
	lines := make([]string, len(e.Problems))
	for i, p := range e.Problems {
		lines[i] = p.String()
	}
	return "invalid configuration:\n  " + strings.Join(lines, "\n  ")
}

func (e *Error) add(name, value, source, reason string) {
	e.Problems = append(e.Problems, Problem{Var: name, Value: value, Source: source, Reason: reason})
}

func (e *Error) orNil() error {
	if len(e.Problems) == 0 {
		return nil
	}
	return e
}

// Loader reads the configuration from its sources. Create it with
// NewLoader before parsing flags; call Load after.
type Loader struct {
	file  string
	flags map[string]string
	order []string
}

// NewLoader registers -config.file and one flag per variable on fs.
func NewLoader(fs *flag.FlagSet) *Loader {
	l := &Loader{flags: map[string]string{}}
	fs.StringVar(&l.file, "config.file", "", "optional YAML file of VARIABLE: value pairs (also "+EnvConfigFile+")")
	for _, v := range vars() {
		name := v.Name
		help := fmt.Sprintf("%s (%s; env %s)", v.Help, v.Allowed, v.Name)
		fs.Func(v.Flag(), help, func(s string) error {
			if _, seen := l.flags[name]; !seen {
				l.order = append(l.order, name)
			}
			l.flags[name] = s
			return nil
		})
	}
	return l
}

// Load applies defaults, then the YAML file, then the environment (lookup,
// usually os.LookupEnv), then flags, and validates. It returns the config and
// an *Error naming every problem, or another error if the file cannot be read.
func (l *Loader) Load(lookup func(string) (string, bool)) (*Config, error) {
	c := Default()
	var errs Error
	file := l.file
	if file == "" {
		file, _ = lookup(EnvConfigFile)
	}
	if file != "" {
		values, err := readFile(file)
		if err != nil {
			return nil, err
		}
		apply(&c, values, "file "+file, &errs)
	}
	env := map[string]string{}
	for _, v := range vars() {
		if raw, ok := lookup(v.Name); ok {
			env[v.Name] = raw
		}
	}
	apply(&c, env, "environment", &errs)
	for _, name := range l.order {
		v, _ := lookupVar(name)
		if err := v.set(&c, l.flags[name]); err != nil {
			errs.add(name, l.flags[name], "flag -"+v.Flag(), err.Error())
		}
	}
	// Validate even after parse errors: every problem is reported in one go
	// (a value that did not parse keeps its default here).
	if err := c.Validate(); err != nil {
		var ve *Error
		if errors.As(err, &ve) {
			errs.Problems = append(errs.Problems, ve.Problems...)
		}
	}
	return &c, errs.orNil()
}

// apply sets the known variables of values in name order; unknown names in a
// file are reported (a typo must not silently fall back to a default).
func apply(c *Config, values map[string]string, source string, errs *Error) {
	names := make([]string, 0, len(values))
	for k := range values {
		names = append(names, k)
	}
	sort.Strings(names)
	for _, name := range names {
		v, ok := lookupVar(name)
		if !ok {
			if strings.HasPrefix(source, "file") {
				errs.add(name, "", source, "unknown variable")
			}
			continue
		}
		raw := values[name]
		if err := v.set(c, raw); err != nil {
			shown := raw
			if v.Secret {
				shown = "<redacted>"
			}
			errs.add(name, shown, source, err.Error())
		}
	}
}

func readFile(path string) (map[string]string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read config file: %w", err)
	}
	var raw map[string]any
	if err := yaml.Unmarshal(b, &raw); err != nil {
		return nil, fmt.Errorf("parse config file %s: %w", path, err)
	}
	out := make(map[string]string, len(raw))
	for k, v := range raw {
		switch v.(type) {
		case map[string]any, []any:
			return nil, fmt.Errorf("parse config file %s: %s: want a scalar value (the file is flat VARIABLE: value pairs)", path, k)
		case nil:
			out[strings.ToUpper(k)] = ""
		default:
			out[strings.ToUpper(k)] = fmt.Sprint(v)
		}
	}
	return out, nil
}

// Get returns the value of a variable as text.
func (c *Config) Get(name string) (string, error) {
	v, ok := lookupVar(name)
	if !ok {
		return "", fmt.Errorf("unknown variable %s", name)
	}
	return v.get(c), nil
}

// WithRuntime returns a copy of c with runtime overrides applied (the values
// kept in Redis rb:config:<app>, or replay's --set). Only runtime variables
// may be set; the result is validated as a whole.
func (c Config) WithRuntime(values map[string]string) (Config, error) {
	var errs Error
	names := make([]string, 0, len(values))
	for k := range values {
		names = append(names, k)
	}
	sort.Strings(names)
	for _, name := range names {
		v, ok := lookupVar(name)
		switch {
		case !ok:
			errs.add(name, values[name], "", "unknown variable")
		case !v.Runtime:
			errs.add(name, values[name], "", "cannot be changed at run time; set it in the environment and restart")
		default:
			if err := v.set(&c, values[name]); err != nil {
				errs.add(name, values[name], "", err.Error())
			}
		}
	}
	if len(errs.Problems) == 0 {
		if err := c.Validate(); err != nil {
			var ve *Error
			if errors.As(err, &ve) {
				errs.Problems = append(errs.Problems, ve.Problems...)
			}
		}
	}
	return c, errs.orNil()
}

// RuntimeValues returns the current value of every runtime variable.
func (c *Config) RuntimeValues() map[string]string {
	out := map[string]string{}
	for _, v := range vars() {
		if v.Runtime {
			out[v.Name] = v.get(c)
		}
	}
	return out
}

// Print writes every variable as NAME=value, secrets redacted.
func (c *Config) Print(w io.Writer) error {
	for _, v := range vars() {
		val := v.get(c)
		if v.Secret && val != "" {
			val = "<redacted>"
			if v.Name == "RB_REDIS_URL" {
				val = redactURL(v.get(c))
			}
		}
		if v.Name == "RB_NATS_URL" {
			val = redactURL(val)
		}
		if _, err := fmt.Fprintf(w, "%s=%s\n", v.Name, val); err != nil {
			return err
		}
	}
	return nil
}

// redactURL hides the password of a URL (or of each of a comma list).
func redactURL(s string) string {
	parts := strings.Split(s, ",")
	for i, p := range parts {
		u, err := url.Parse(strings.TrimSpace(p))
		if err != nil || u.User == nil {
			continue
		}
		if _, has := u.User.Password(); has {
			u.User = url.UserPassword(u.User.Username(), "redacted")
		}
		parts[i] = u.String()
	}
	return strings.Join(parts, ",")
}
