package main

// Conformance tests for remote.CopyToRemote and remote.CopyFile, mirroring pulumi-command v1.2.1
// provider/pkg/provider/remote/copyController.go (sftpCopy's table, copyTextContent) and
// copyfileController.go. The test server's SFTP root is this machine, so remote paths are temp dirs.

import (
	"archive/tar"
	"compress/gzip"
	"context"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/pulumi/pulumi/sdk/v3/go/common/resource"
	"github.com/pulumi/pulumi/sdk/v3/go/common/resource/archive"
	"github.com/pulumi/pulumi/sdk/v3/go/common/resource/asset"

	"sparks/toolchain/pulumi/internal/provutil"
)

// copyFixture is a server plus a local source tree:
//
//	<local>/payload/a.txt, <local>/payload/sub/b.sh (0755), <local>/single.txt
type copyFixture struct {
	srv    *sshServer
	key    string
	local  string
	remote string
}

func newCopyFixture(t *testing.T) copyFixture {
	t.Helper()
	srv, key := keyServer(t, sshServerOptions{})
	local := t.TempDir()
	writeFile(t, filepath.Join(local, "payload", "a.txt"), "a", 0o644)
	writeFile(t, filepath.Join(local, "payload", "sub", "b.sh"), "#!/bin/sh\n", 0o755)
	writeFile(t, filepath.Join(local, "single.txt"), "single", 0o600)
	return copyFixture{srv: srv, key: key, local: local, remote: t.TempDir()}
}

func writeFile(t *testing.T, path, content string, mode os.FileMode) {
	t.Helper()
	must(t, os.MkdirAll(filepath.Dir(path), 0o755))
	must(t, os.WriteFile(path, []byte(content), mode))
	must(t, os.Chmod(path, mode))
}

func (f copyFixture) connection() map[string]any {
	return connectionTo(f.srv, map[string]any{"privateKey": f.key, "dialErrorLimit": 0.0})
}

// copyToRemoteInputs builds CopyToRemote inputs with source (an asset or archive) and remotePath.
func (f copyFixture) copyToRemoteInputs(source resource.PropertyValue, remotePath string) provutil.Props {
	m := resource.NewPropertyMapFromMap(map[string]any{"connection": f.connection(), "remotePath": remotePath})
	m["connection"] = resource.MakeSecret(m["connection"])
	m["source"] = source
	return provutil.Props{M: m}
}

func fileAsset(t *testing.T, path string) resource.PropertyValue {
	t.Helper()
	a, err := asset.FromPath(path)
	must(t, err)
	return resource.NewAssetProperty(a)
}

func fileArchive(t *testing.T, path string) resource.PropertyValue {
	t.Helper()
	a, err := archive.FromPath(path)
	must(t, err)
	return resource.NewArchiveProperty(a)
}

func textAsset(t *testing.T, text string) resource.PropertyValue {
	t.Helper()
	a, err := asset.FromText(text)
	must(t, err)
	return resource.NewAssetProperty(a)
}

func (f copyFixture) copyToRemote(t *testing.T, source resource.PropertyValue, remotePath string) error {
	t.Helper()
	p := &commandProvider{}
	return p.copy(context.Background(), "", tCopyToRemote, f.copyToRemoteInputs(source, remotePath))
}

// tree lists the files under root as "rel=content", sorted.
func tree(t *testing.T, root string) []string {
	t.Helper()
	var out []string
	must(t, filepath.WalkDir(root, func(path string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, _ := filepath.Rel(root, path)
		b, err := os.ReadFile(path)
		out = append(out, rel+"="+string(b))
		return err
	}))
	sort.Strings(out)
	return out
}

func wantTree(t *testing.T, root string, want ...string) {
	t.Helper()
	sort.Strings(want)
	if got := tree(t, root); strings.Join(got, "|") != strings.Join(want, "|") {
		t.Fatalf("tree of %s:\n got  %q\n want %q", root, got, want)
	}
}

// sftpCopy table, row "file": into an existing directory the file keeps its name.
func TestCopyFileIntoExistingDirectory(t *testing.T) {
	f := newCopyFixture(t)
	must(t, f.copyToRemote(t, fileAsset(t, filepath.Join(f.local, "single.txt")), f.remote))
	wantTree(t, f.remote, "single.txt=single")
}

// sftpCopy table, row "file": an existing file is overwritten; a missing path is created, with
// its parent directories.
func TestCopyFileToFilePath(t *testing.T) {
	f := newCopyFixture(t)
	writeFile(t, filepath.Join(f.remote, "existing"), "old content, longer than the new", 0o644)
	must(t, f.copyToRemote(t, fileAsset(t, filepath.Join(f.local, "single.txt")), filepath.Join(f.remote, "existing")))
	must(t, f.copyToRemote(t, fileAsset(t, filepath.Join(f.local, "single.txt")), filepath.Join(f.remote, "new", "deep", "name")))
	wantTree(t, f.remote, "existing=single", "new/deep/name=single")
}

// sftpCopy table, row "dir": without a trailing slash the directory itself is copied, into an
// existing directory and into a path that does not exist yet (made first) alike.
func TestCopyDirectoryNestsItself(t *testing.T) {
	f := newCopyFixture(t)
	src := fileArchive(t, filepath.Join(f.local, "payload"))
	must(t, f.copyToRemote(t, src, f.remote))
	must(t, f.copyToRemote(t, src, filepath.Join(f.remote, "new", "dest")))
	wantTree(t, f.remote, "payload/a.txt=a", "payload/sub/b.sh=#!/bin/sh\n",
		"new/dest/payload/a.txt=a", "new/dest/payload/sub/b.sh=#!/bin/sh\n")
}

// sftpCopy table, row "dir/": with a trailing slash the directory's contents are copied.
func TestCopyDirectoryContentsWithTrailingSlash(t *testing.T) {
	f := newCopyFixture(t)
	src := fileArchive(t, filepath.Join(f.local, "payload")+"/")
	writeFile(t, filepath.Join(f.remote, "kept"), "kept", 0o644)
	must(t, f.copyToRemote(t, src, f.remote))
	must(t, f.copyToRemote(t, src, filepath.Join(f.remote, "fresh")))
	wantTree(t, f.remote, "kept=kept", "a.txt=a", "sub/b.sh=#!/bin/sh\n", "fresh/a.txt=a", "fresh/sub/b.sh=#!/bin/sh\n")
}

// sftpCopy table, column "exists as file": a directory onto an existing file fails.
func TestCopyDirectoryOntoFileFails(t *testing.T) {
	f := newCopyFixture(t)
	target := filepath.Join(f.remote, "file")
	writeFile(t, target, "x", 0o644)
	if err := f.copyToRemote(t, fileArchive(t, filepath.Join(f.local, "payload")+"/"), target); err == nil ||
		err.Error() != "remote path "+target+" exists but is not a directory" {
		t.Fatalf("dir/ onto a file: got %v", err)
	}
	if err := f.copyToRemote(t, fileArchive(t, filepath.Join(f.local, "payload")), target); err == nil ||
		!strings.HasPrefix(err.Error(), "failed to stat remote path "+target+"/payload") &&
			!strings.HasPrefix(err.Error(), "failed to create remote directory "+target+"/payload") {
		t.Fatalf("dir onto a file: got %v", err)
	}
	wantTree(t, f.remote, "file=x")
}

// copy.go (source docs): "archives like .tgz will not be unpacked": a FileArchive of a .tgz is
// copied as the file it is.
func TestCopyArchiveFileIsNotUnpacked(t *testing.T) {
	f := newCopyFixture(t)
	tgz := filepath.Join(f.local, "bundle.tgz")
	out, err := os.Create(tgz)
	must(t, err)
	gz := gzip.NewWriter(out)
	tw := tar.NewWriter(gz)
	must(t, tw.WriteHeader(&tar.Header{Name: "inside.txt", Mode: 0o644, Size: 2}))
	_, err = tw.Write([]byte("in"))
	must(t, err)
	must(t, tw.Close())
	must(t, gz.Close())
	must(t, out.Close())
	must(t, f.copyToRemote(t, fileArchive(t, tgz), f.remote))
	want, err := os.ReadFile(tgz)
	must(t, err)
	wantTree(t, f.remote, "bundle.tgz="+string(want))
}

// copyController.go copyTextContent: a StringAsset is written to remotePath (parents made); an
// existing directory as remotePath fails.
func TestCopyStringAsset(t *testing.T) {
	f := newCopyFixture(t)
	must(t, f.copyToRemote(t, textAsset(t, "key=value\n"), filepath.Join(f.remote, "etc", "app.conf")))
	wantTree(t, f.remote, "etc/app.conf=key=value\n")
	err := f.copyToRemote(t, textAsset(t, "x"), f.remote)
	want := "remote path " + f.remote + " is a directory; when using a text asset, remotePath must be a file path"
	if err == nil || err.Error() != want {
		t.Fatalf("got %v, want %q", err, want)
	}
}

// copyController.go copyFile: files are created with sftp Create and no chmod, so the server's
// default mode applies; the local mode (here 0755 and 0600) is not carried over.
func TestCopyDoesNotKeepFileModes(t *testing.T) {
	f := newCopyFixture(t)
	must(t, f.copyToRemote(t, fileArchive(t, filepath.Join(f.local, "payload")), f.remote))
	must(t, f.copyToRemote(t, fileAsset(t, filepath.Join(f.local, "single.txt")), f.remote))
	for _, rel := range []string{"payload/sub/b.sh", "single.txt"} {
		st, err := os.Stat(filepath.Join(f.remote, rel))
		must(t, err)
		// pkg/sftp's server creates files 0644 (less the umask), as OpenSSH's sftp-server does 0666.
		if st.Mode().Perm()&0o111 != 0 || st.Mode().Perm()&0o044 == 0 {
			t.Errorf("%s: mode %v, want the server's default for new files", rel, st.Mode().Perm())
		}
	}
}

// copyController.go sftpCopy: a missing local source fails with os.Open's error, before anything
// is written.
func TestCopyMissingSource(t *testing.T) {
	f := newCopyFixture(t)
	missing := filepath.Join(f.local, "missing")
	a := &asset.Asset{Sig: asset.AssetSig, Path: missing}
	err := f.copyToRemote(t, resource.NewAssetProperty(a), f.remote)
	if err == nil || err.Error() != "open "+missing+": no such file or directory" {
		t.Fatalf("got %v", err)
	}
}

// copyfileController.go: remote.CopyFile writes localPath to exactly remotePath with sftp Create:
// no parent directories are made and an existing directory is not copied into.
func TestCopyFileResource(t *testing.T) {
	f := newCopyFixture(t)
	p := &commandProvider{}
	copyFile := func(remotePath string) error {
		return p.copy(context.Background(), "", tCopyFile, propsOf(map[string]any{
			"connection": f.connection(), "localPath": filepath.Join(f.local, "single.txt"), "remotePath": remotePath,
		}))
	}
	must(t, copyFile(filepath.Join(f.remote, "copied")))
	wantTree(t, f.remote, "copied=single")
	if err := copyFile(filepath.Join(f.remote, "no", "such", "dir")); err == nil {
		t.Fatal("CopyFile made parent directories")
	}
	if err := copyFile(f.remote); err == nil {
		t.Fatal("CopyFile copied into a directory")
	}
	err := p.copy(context.Background(), "", tCopyFile, propsOf(map[string]any{
		"connection": f.connection(), "localPath": filepath.Join(f.local, "missing"), "remotePath": f.remote,
	}))
	if err == nil || !strings.HasPrefix(err.Error(), "open ") {
		t.Fatalf("missing local file: got %v", err)
	}
	wantTree(t, f.remote, "copied=single")
}
