package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"
)

// AppConfig is the runtime config of one app: variable names mapped to
// values exactly as they would appear in the environment. Validation is the
// caller's job. Version counts the writes; 0 means never set.
type AppConfig struct {
	Values    map[string]string
	Version   int64
	UpdatedAt time.Time
}

func (c AppConfig) clone() AppConfig {
	c.Values = maps.Clone(c.Values)
	return c
}

// setConfigScript writes the config if the stored version is the expected one
// (or the expected one is negative) and returns {written (0|1), version}.
//
// KEYS[1] config key; ARGV[1] expected version; ARGV[2] values (JSON); ARGV[3] updated_at.
var setConfigScript = redis.NewScript(`
local cur = tonumber(redis.call('HGET', KEYS[1], 'version') or '0')
local want = tonumber(ARGV[1])
if want >= 0 and cur ~= want then
  return {0, cur}
end
local nv = cur + 1
redis.call('HSET', KEYS[1], 'version', nv, 'values', ARGV[2], 'updated_at', ARGV[3])
return {1, nv}
`)

// GetConfig returns the runtime config of app; a config never set is the zero
// AppConfig and no error. When Redis is unreachable it returns the last config
// this Store read or wrote for app with an error wrapping ErrStale, or, when it
// has none, an error wrapping ErrUnavailable.
func (s *Store) GetConfig(ctx context.Context, app string) (AppConfig, error) {
	if err := checkName("app", app); err != nil {
		return AppConfig{}, fmt.Errorf("get config for app %q: %w", app, err)
	}
	octx, cancel := s.opCtx(ctx)
	defer cancel()
	fields, cause := s.rdb.HGetAll(octx, s.keys.config(app)).Result()
	if err := s.result(ctx, cause); err != nil {
		if errors.Is(err, ErrUnavailable) {
			s.mu.Lock()
			last, ok := s.configs[app]
			s.mu.Unlock()
			if ok {
				return last.clone(), fmt.Errorf("get config for app %q: %w (version %d): %w", app, ErrStale, last.Version, cause)
			}
		}
		return AppConfig{}, fmt.Errorf("get config for app %q: %w", app, err)
	}
	if len(fields) == 0 {
		s.mu.Lock()
		delete(s.configs, app)
		s.mu.Unlock()
		return AppConfig{}, nil
	}
	cfg, err := decodeConfig(fields)
	if err != nil {
		return AppConfig{}, fmt.Errorf("get config for app %q: %w", app, err)
	}
	s.remember(app, cfg)
	return cfg, nil
}

// SetConfig replaces the runtime config of app with values if its stored
// version is expectVersion (0 when never set; AnyVersion to skip the check),
// and returns the config as stored, with the next version. A different stored
// version gives an error wrapping ErrConflict: read again, merge, retry.
func (s *Store) SetConfig(ctx context.Context, app string, values map[string]string, expectVersion int64) (AppConfig, error) {
	if err := checkName("app", app); err != nil {
		return AppConfig{}, fmt.Errorf("set config for app %q: %w", app, err)
	}
	if values == nil {
		values = map[string]string{}
	}
	enc, err := json.Marshal(values)
	if err != nil {
		return AppConfig{}, fmt.Errorf("set config for app %q: encode values: %w", app, err)
	}
	now := s.opts.Now().UTC()
	octx, cancel := s.opCtx(ctx)
	defer cancel()
	cmd := setConfigScript.Run(octx, s.rdb, []string{s.keys.config(app)},
		expectVersion, enc, now.Format(time.RFC3339Nano))
	if err := s.result(ctx, cmd.Err()); err != nil {
		return AppConfig{}, fmt.Errorf("set config for app %q: %w", app, err)
	}
	res, err := cmd.Int64Slice()
	if err != nil || len(res) != 2 {
		return AppConfig{}, fmt.Errorf("set config for app %q: script returned %v (%v), want [written version]", app, cmd.Val(), err)
	}
	if res[0] == 0 {
		return AppConfig{}, fmt.Errorf("set config for app %q: %w: stored version is %d, expected %d", app, ErrConflict, res[1], expectVersion)
	}
	cfg := AppConfig{Values: maps.Clone(values), Version: res[1], UpdatedAt: now}
	s.remember(app, cfg)
	return cfg, nil
}

func (s *Store) remember(app string, cfg AppConfig) {
	s.mu.Lock()
	s.configs[app] = cfg.clone()
	s.mu.Unlock()
}

func decodeConfig(f map[string]string) (AppConfig, error) {
	var cfg AppConfig
	v, err := strconv.ParseInt(f["version"], 10, 64)
	if err != nil {
		return AppConfig{}, fmt.Errorf("decode field version %q: %w", f["version"], err)
	}
	cfg.Version = v
	if raw := f["updated_at"]; raw != "" {
		if cfg.UpdatedAt, err = time.Parse(time.RFC3339Nano, raw); err != nil {
			return AppConfig{}, fmt.Errorf("decode field updated_at: %w", err)
		}
	}
	cfg.Values = map[string]string{}
	if raw := f["values"]; raw != "" {
		if err := json.Unmarshal([]byte(raw), &cfg.Values); err != nil {
			return AppConfig{}, fmt.Errorf("decode field values: %w", err)
		}
	}
	return cfg, nil
}
