package main

// remote.CopyToRemote and remote.CopyFile.

import (
	"archive/tar"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"strings"

	"github.com/pulumi/pulumi/sdk/v3/go/common/resource"
	"github.com/pulumi/pulumi/sdk/v3/go/common/resource/archive"
	"github.com/pulumi/pulumi/sdk/v3/go/common/resource/asset"

	"sparks/toolchain/pulumi/internal/provutil"
)

func shellQuote(s string) string {
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// copy implements remote.CopyToRemote and remote.CopyFile: files are streamed with `cat`, archives
// and directories with `tar` (both must exist on the remote host).
func (p *commandProvider) copy(ctx context.Context, _ resource.URN, t string, in provutil.Props) error {
	remotePath := in.String("remotePath", "")
	var src resource.PropertyValue
	if t == tCopyFile {
		a, err := asset.FromPath(in.String("localPath", ""))
		if err != nil {
			return err
		}
		src = resource.NewAssetProperty(a)
	} else {
		src = provutil.Unsecret(in.M["source"])
	}
	client, closeAll, err := dialConnection(ctx, in.Object("connection"))
	if err != nil {
		return err
	}
	defer closeAll()
	var stderr strings.Builder
	switch {
	case src.IsAsset():
		a := src.AssetValue()
		blob, err := a.Read()
		if err != nil {
			return err
		}
		defer func() { _ = blob.Close() }()
		base := "file"
		if a.Path != "" {
			base = filepath.Base(a.Path)
		}
		// Into an existing directory, or to the path itself.
		cmd := fmt.Sprintf("if [ -d %[1]s ]; then cat > %[1]s/%[2]s; else cat > %[1]s; fi",
			shellQuote(remotePath), shellQuote(base))
		if err := runSession(client, cmd, nil, "", io.Discard, &stderr, blob); err != nil {
			return fmt.Errorf("copying to %s: %w: %s", remotePath, err, stderr.String())
		}
	case src.IsArchive():
		arch := src.ArchiveValue()
		q := shellQuote(remotePath)
		cmd := fmt.Sprintf("mkdir -p %[1]s && tar -x -f - -C %[1]s", q)
		if arch.Path != "" {
			if st, err := os.Stat(arch.Path); err == nil && st.IsDir() {
				// A directory goes into remotePath when that is an existing directory, else becomes remotePath.
				sub := q + "/" + shellQuote(filepath.Base(filepath.Clean(arch.Path)))
				cmd = fmt.Sprintf("if [ -d %[1]s ]; then d=%[2]s; else d=%[1]s; fi; mkdir -p \"$d\" && tar -x -f - -C \"$d\"",
					q, sub)
			}
		}
		pr, pw := io.Pipe()
		go func() { pw.CloseWithError(writeTar(arch, pw)) }()
		if err := runSession(client, cmd, nil, "", io.Discard, &stderr, pr); err != nil {
			return fmt.Errorf("copying to %s: %w: %s", remotePath, err, stderr.String())
		}
	default:
		return errors.New("source must be an asset or an archive")
	}
	return nil
}

func writeTar(a *archive.Archive, w io.Writer) error {
	r, err := a.Open()
	if err != nil {
		return err
	}
	defer func() { _ = r.Close() }()
	tw := tar.NewWriter(w)
	for {
		name, blob, err := r.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return err
		}
		data, err := io.ReadAll(blob)
		_ = blob.Close()
		if err != nil {
			return err
		}
		mode := int64(0o644)
		if a.Path != "" {
			// Keep the file mode (executable bits) of files from a directory on disk.
			if st, err := os.Stat(filepath.Join(a.Path, name)); err == nil && st.Mode().IsRegular() {
				mode = int64(st.Mode().Perm())
			}
		}
		hdr := &tar.Header{Name: path.Clean(filepath.ToSlash(name)), Mode: mode, Size: int64(len(data))}
		if err := tw.WriteHeader(hdr); err != nil {
			return err
		}
		if _, err := tw.Write(data); err != nil {
			return err
		}
	}
	return tw.Close()
}
