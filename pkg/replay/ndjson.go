package replay

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"runtime"
	"sync"
)

// blockSize is how much of the file one parse job covers.
const blockSize = 4 << 20

// ReadFile loads an export file (gzip when its name ends in .gz, or when it
// starts with the gzip magic bytes) as the Recording of app.
func ReadFile(ctx context.Context, path, app string) (*Recording, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("open recording: %w", err)
	}
	defer f.Close()
	size := int64(0)
	if st, err := f.Stat(); err == nil {
		size = st.Size()
	}
	rec, err := load(ctx, f, app, size)
	if err != nil {
		return nil, fmt.Errorf("read recording %s: %w", path, err)
	}
	return rec, nil
}

// ReadMeta returns the header of an export file (nil when it has none), so
// a caller can learn the file's app before reading it all.
func ReadMeta(path string) (*ExportMeta, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("open recording: %w", err)
	}
	defer f.Close()
	br := bufio.NewReader(f)
	if magic, err := br.Peek(2); err == nil && magic[0] == 0x1f && magic[1] == 0x8b {
		gz, err := gzip.NewReader(br)
		if err != nil {
			return nil, fmt.Errorf("read recording %s: gzip: %w", path, err)
		}
		defer gz.Close()
		br = bufio.NewReader(gz)
	}
	first, err := br.ReadBytes('\n')
	if err != nil && !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("read recording %s: %w", path, err)
	}
	c := newChunk("")
	c.line(bytes.TrimRight(first, "\r\n"))
	return c.meta, nil
}

// Load reads export lines from r (gzip is recognised by its magic bytes)
// and builds the Recording of app. Lines are parsed on all cores in blocks
// of a few MB and assembled in file order; one goroutine reads (and
// decompresses) while the others parse.
func Load(ctx context.Context, r io.Reader, app string) (*Recording, error) {
	return load(ctx, r, app, 0)
}

// load is Load with the size of the input when known (an uncompressed
// file): the Samples are allocated at once from the first block's density.
func load(ctx context.Context, r io.Reader, app string, size int64) (*Recording, error) {
	br := bufio.NewReaderSize(r, 1<<20)
	if magic, err := br.Peek(2); err == nil && magic[0] == 0x1f && magic[1] == 0x8b {
		size = 0
		gz, err := gzip.NewReader(br)
		if err != nil {
			return nil, fmt.Errorf("gzip: %w", err)
		}
		defer gz.Close()
		br = bufio.NewReaderSize(gz, 1<<20)
	}

	type job struct {
		n    int
		data []byte
		out  chan *chunk
	}
	workers := max(runtime.GOMAXPROCS(0), 1)
	jobs := make(chan job, workers)
	results := make(chan job, 2*workers)
	// Blocks are reused once parsed (a chunk keeps no reference to them):
	// a few MB in use instead of the file's size in garbage.
	free := make(chan []byte, 4*workers)
	var wg sync.WaitGroup
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range jobs {
				c := newChunk(app)
				c.lines(j.data)
				j.out <- c
				select {
				case free <- j.data[:0]:
				default:
				}
			}
		}()
	}

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	readErr := make(chan error, 1)
	go func() {
		defer close(jobs)
		defer close(results)
		var carry []byte
		for n := 0; ; n++ {
			var buf []byte
			select {
			case buf = <-free:
			default:
			}
			if cap(buf) < blockSize+len(carry) {
				buf = make([]byte, 0, blockSize+max(len(carry), blockSize/16))
			}
			buf = append(buf[:0], carry...)
			k, err := io.ReadFull(br, buf[len(carry):cap(buf)])
			buf = buf[:len(carry)+k]
			last := err != nil
			if err != nil && !errors.Is(err, io.EOF) && !errors.Is(err, io.ErrUnexpectedEOF) {
				readErr <- fmt.Errorf("read: %w", err)
				return
			}
			if !last {
				cut := bytes.LastIndexByte(buf, '\n')
				if cut < 0 {
					// A line longer than a block: read on.
					carry = buf
					n--
					continue
				}
				carry = append([]byte(nil), buf[cut+1:]...)
				buf = buf[:cut+1]
			}
			j := job{n: n, data: buf, out: make(chan *chunk, 1)}
			select {
			case jobs <- j:
			case <-ctx.Done():
				return
			}
			select {
			case results <- j:
			case <-ctx.Done():
				return
			}
			if last {
				return
			}
		}
	}()

	b := NewBuilder(app)
	for j := range results {
		select {
		case c := <-j.out:
			if j.n == 0 && size > 0 && len(j.data) > 0 {
				// 5 % more than the first block's density says, so one
				// allocation holds the Samples of a regular file.
				n := int(float64(len(c.samples)) * float64(size) / float64(len(j.data)) * 1.05)
				b.rec.Samples = make([]Sample, 0, n)
			}
			b.addChunk(c)
		case <-ctx.Done():
			cancel()
			wg.Wait()
			return nil, ctx.Err()
		}
	}
	wg.Wait()
	select {
	case err := <-readErr:
		return nil, err
	default:
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	return b.Finish(), nil
}
