package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"text/template"
	"time"
)

// The peers are configured to do the same work per request as the rb proxy:
// keep-alive on both sides without a request limit, connections to the
// backends reused, X-Forwarded-For/-Proto/-Host and X-Request-Id added, no
// access log, one worker (thread/process) on the proxy CPU.

var haproxyTmpl = template.Must(template.New("haproxy").Parse(`global
    nbthread 1
    maxconn 8000

defaults
    mode http
    option http-keep-alive
    option forwardfor
    timeout connect 3s
    timeout client 60s
    timeout server 60s
    timeout http-keep-alive 60s
    http-reuse always
    unique-id-format %{+X}o%ci:%cp_%fi:%fp_%Ts_%rt:%pid
    unique-id-header X-Request-Id

frontend bench
    bind {{.Listen}}
    http-request set-header X-Forwarded-Proto http
    http-request set-header X-Forwarded-Host %[req.hdr(host)]
    default_backend workers

backend workers
    balance {{.Balance}}
{{- range $i, $a := .Backends}}
    server b{{$i}} {{$a}}
{{- end}}
`))

var nginxTmpl = template.Must(template.New("nginx").Parse(`worker_processes 1;
daemon off;
master_process on;
pid {{.Dir}}/nginx.pid;
error_log {{.Dir}}/nginx-error.log warn;
worker_rlimit_nofile 65536;

events {
    worker_connections 16384;
}

http {
    access_log off;
    client_body_temp_path {{.Dir}}/nginx-tmp/body;
    proxy_temp_path {{.Dir}}/nginx-tmp/proxy;
    fastcgi_temp_path {{.Dir}}/nginx-tmp/fastcgi;
    uwsgi_temp_path {{.Dir}}/nginx-tmp/uwsgi;
    scgi_temp_path {{.Dir}}/nginx-tmp/scgi;
    keepalive_requests 100000000;
    keepalive_timeout 60s;

    upstream workers {
{{- if .Method}}
        {{.Method}};
{{- end}}
{{- range .Backends}}
        server {{.}};
{{- end}}
        keepalive 256;
        keepalive_requests 100000000;
        keepalive_timeout 60s;
    }

    server {
        listen {{.Listen}};
        location / {
            proxy_pass http://workers;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header Host $http_host;
            proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
            proxy_set_header X-Forwarded-Proto $scheme;
            proxy_set_header X-Forwarded-Host $http_host;
            proxy_set_header X-Request-Id $request_id;
        }
    }
}
`))

type peerConf struct {
	Dir      string
	Listen   string
	Balance  string // HAProxy balance algorithm
	Method   string // NGINX upstream method; empty: round robin
	Backends []string
}

// renderConf writes a config from tmpl into dir/name.
func renderConf(tmpl *template.Template, c peerConf, name string) (string, error) {
	var b strings.Builder
	if err := tmpl.Execute(&b, c); err != nil {
		return "", fmt.Errorf("render %s: %w", name, err)
	}
	path := filepath.Join(c.Dir, name)
	if err := os.WriteFile(path, []byte(b.String()), 0o644); err != nil {
		return "", fmt.Errorf("write %s: %w", name, err)
	}
	return path, nil
}

// running is a proxy under test (or a backend reached directly).
type running struct {
	name  string
	url   string
	p     *proc  // nil for a backend reached directly
	admin string // rb only: the admin listener host:port
	nats  string // rb only: its embedded NATS URL
}

// startHAProxy runs HAProxy in the foreground (-db) with balance algo over
// the backends, pinned to the proxy CPUs.
func (e *env) startHAProxy(ctx context.Context, name, algo string, backends []string) (*running, error) {
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp(e.dir, "haproxy-")
	if err != nil {
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	listen := fmt.Sprintf("127.0.0.1:%d", port)
	conf, err := renderConf(haproxyTmpl, peerConf{Dir: dir, Listen: listen, Balance: algo, Backends: backends}, "haproxy.cfg")
	if err != nil {
		return nil, err
	}
	p, err := startProc(name, e.cfg.proxyCPUs, dir, baseEnv(), e.cfg.haproxy, "-f", conf, "-db")
	if err != nil {
		return nil, err
	}
	e.procs.add(p)
	if err := p.waitDial(ctx, listen, 10*time.Second); err != nil {
		return nil, err
	}
	return &running{name: name, url: "http://" + listen + "/", p: p}, nil
}

// startNGINX runs NGINX with its own prefix, config, pid and error log in a
// temp dir, daemon off, one worker, upstream keepalive, method over the
// backends ("" is round robin), pinned to the proxy CPUs.
func (e *env) startNGINX(ctx context.Context, name, method string, backends []string) (*running, error) {
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp(e.dir, "nginx-")
	if err != nil {
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	if err := os.MkdirAll(filepath.Join(dir, "nginx-tmp"), 0o755); err != nil {
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	listen := fmt.Sprintf("127.0.0.1:%d", port)
	conf, err := renderConf(nginxTmpl, peerConf{Dir: dir, Listen: listen, Method: method, Backends: backends}, "nginx.conf")
	if err != nil {
		return nil, err
	}
	p, err := startProc(name, e.cfg.proxyCPUs, dir, baseEnv(), e.cfg.nginx,
		"-p", dir+"/", "-c", conf, "-e", filepath.Join(dir, "nginx-error.log"))
	if err != nil {
		return nil, err
	}
	e.procs.add(p)
	if err := p.waitDial(ctx, listen, 10*time.Second); err != nil {
		return nil, err
	}
	return &running{name: name, url: "http://" + listen + "/", p: p}, nil
}

// baseEnv is the environment of the children: only what a program needs to
// run, so no stray RB_* or proxy variable of the caller leaks in.
func baseEnv() []string {
	env := []string{"PATH=" + os.Getenv("PATH"), "HOME=" + os.Getenv("HOME"), "LANG=C"}
	return env
}
