package main

// remote.CopyToRemote and remote.CopyFile: files go over SFTP, as in pulumi-command v1.2.1
// (provider/pkg/provider/remote/copyController.go, copyfileController.go, copy.go). Nothing but an
// SFTP server is needed on the host; file modes are not carried over (the server's defaults apply).

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/pkg/sftp"
	"github.com/pulumi/pulumi/sdk/v3/go/common/diag"
	"github.com/pulumi/pulumi/sdk/v3/go/common/resource"

	"sparks/toolchain/pulumi/internal/provutil"
)

// copySource is what CopyToRemote copies: a local file or directory (FileAsset, FileArchive), or
// the text of a StringAsset.
type copySource struct {
	path   string
	text   string
	isText bool
}

func copySourceOf(in provutil.Props) (copySource, error) {
	src := provutil.Unsecret(in.M["source"])
	switch {
	case src.IsAsset():
		a := src.AssetValue()
		if a.IsText() {
			return copySource{text: a.Text, isText: true}, nil
		}
		if !a.IsPath() {
			return copySource{}, errors.New("asset must be a path-based file asset or a text asset")
		}
		return copySource{path: a.Path}, nil
	case src.IsArchive():
		a := src.ArchiveValue()
		if !a.IsPath() {
			return copySource{}, errors.New("archive must be a path to a file or directory")
		}
		return copySource{path: a.Path}, nil
	}
	return copySource{}, errors.New("either asset or archive must be set")
}

func (p *commandProvider) copy(ctx context.Context, urn resource.URN, t string, in provutil.Props) error {
	log := p.resourceLog(urn)
	if t == tCopyFile {
		return copyFile(ctx, log, in)
	}
	return copyToRemote(ctx, log, in)
}

// openSFTP dials the connection and starts an SFTP session; close ends both.
func openSFTP(ctx context.Context, log resourceLog, in provutil.Props, opts ...sftp.ClientOption) (*sftp.Client, func(), error) {
	client, closeSSH, err := dialConnection(ctx, log, in.Object("connection"))
	if err != nil {
		return nil, nil, err
	}
	sftpClient, err := sftp.NewClient(client, opts...)
	if err != nil {
		closeSSH()
		return nil, nil, err
	}
	return sftpClient, func() { _ = sftpClient.Close(); closeSSH() }, nil
}

// copyFile implements the deprecated remote.CopyFile: one local file onto exactly remotePath
// (no parent directories are made, an existing directory is not copied into).
func copyFile(ctx context.Context, log resourceLog, in provutil.Props) error {
	localPath, remotePath := in.String("localPath", ""), in.String("remotePath", "")
	log.log(ctx, diag.Debug, fmt.Sprintf("Creating file: %s:%s from local file %s",
		in.Object("connection").String("host", ""), remotePath, localPath))
	local, err := os.Open(localPath)
	if err != nil {
		return err
	}
	defer func() { _ = local.Close() }()
	client, closeAll, err := openSFTP(ctx, log, in)
	if err != nil {
		return err
	}
	defer closeAll()
	remote, err := client.Create(remotePath)
	if err != nil {
		return err
	}
	defer func() { _ = remote.Close() }()
	_, err = remote.ReadFrom(local)
	return err
}

func copyToRemote(ctx context.Context, log resourceLog, in provutil.Props) error {
	src, err := copySourceOf(in)
	if err != nil {
		return err
	}
	remotePath := in.String("remotePath", "")
	host := in.Object("connection").String("host", "")
	if src.isText {
		log.log(ctx, diag.Debug, fmt.Sprintf("Creating file: %s:%s from text asset", host, remotePath))
	} else {
		log.log(ctx, diag.Debug, fmt.Sprintf("Creating file: %s:%s from local file %s", host, remotePath, src.path))
	}
	// Each file is written with one ReadFrom, so concurrent writes are safe.
	client, closeAll, err := openSFTP(ctx, log, in, sftp.UseConcurrentWrites(true))
	if err != nil {
		return err
	}
	defer closeAll()
	if src.isText {
		return writeRemoteText(client, src.text, remotePath)
	}
	return copyPath(client, src.path, remotePath)
}

// remoteStat returns nil, nil when path does not exist.
func remoteStat(client *sftp.Client, path string) (fs.FileInfo, error) {
	info, err := client.Stat(path)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("failed to stat remote path %s: %w", path, err)
	}
	return info, nil
}

// writeRemoteText writes a StringAsset to remotePath, which must not be a directory.
func writeRemoteText(client *sftp.Client, text, remotePath string) error {
	info, err := remoteStat(client, remotePath)
	if err != nil {
		return err
	}
	if info != nil && info.IsDir() {
		return fmt.Errorf("remote path %s is a directory; when using a text asset, remotePath must be a file path", remotePath)
	}
	if err := makeParents(client, remotePath); err != nil {
		return err
	}
	remote, err := client.Create(remotePath)
	if err != nil {
		return fmt.Errorf("failed to create remote file %s: %w", remotePath, err)
	}
	defer func() { _ = remote.Close() }()
	if _, err := remote.Write([]byte(text)); err != nil {
		return fmt.Errorf("failed to write text content to remote path %s: %w", remotePath, err)
	}
	return nil
}

func makeParents(client *sftp.Client, remotePath string) error {
	if err := client.MkdirAll(filepath.Dir(remotePath)); err != nil {
		return fmt.Errorf("failed to create parent directories for %s: %w", remotePath, err)
	}
	return nil
}

// copyPath copies a local file or directory. Where it lands:
//
//	source      remote path is a directory   does not exist         is a file
//	file        remote/file                  remote (parents made)  remote, overwritten
//	dir         remote/dir/...               remote/dir/...         error
//	dir/        remote/...                   remote/...             error
//
// An archive file (.tgz, .zip) is a file: it is copied as is, not unpacked.
func copyPath(client *sftp.Client, localPath, remotePath string) error {
	// Opened rather than stat'ed, for upstream's "open <path>: ..." error.
	local, err := os.Open(localPath)
	if err != nil {
		return err
	}
	info, err := local.Stat()
	_ = local.Close()
	if err != nil {
		return err
	}
	existing, err := remoteStat(client, remotePath)
	if err != nil {
		return err
	}
	if !info.IsDir() {
		dest := remotePath
		switch {
		case existing != nil && existing.IsDir():
			dest = filepath.Join(remotePath, filepath.Base(localPath))
		case existing == nil:
			if err := makeParents(client, remotePath); err != nil {
				return err
			}
		}
		return uploadFile(client, localPath, dest)
	}

	if existing == nil {
		if err := client.MkdirAll(remotePath); err != nil {
			return fmt.Errorf("failed to create remote directory %s: %w", remotePath, err)
		}
	}
	dest := remotePath
	// Without a trailing slash the directory itself is copied, as with cp -r and rsync.
	if !strings.HasSuffix(localPath, "/") {
		dest = filepath.Join(remotePath, filepath.Base(localPath))
	}
	return uploadTree(client, localPath, dest)
}

// uploadTree copies the tree under localDir into remoteDir, making directories as needed. Every
// directory on the way, remoteDir included, must be a directory if it exists.
func uploadTree(client *sftp.Client, localDir, remoteDir string) error {
	return fs.WalkDir(os.DirFS(localDir), ".", func(rel string, entry fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		remote := filepath.Join(remoteDir, rel)
		if !entry.IsDir() {
			return uploadFile(client, filepath.Join(localDir, rel), remote)
		}
		existing, err := remoteStat(client, remote)
		switch {
		case err != nil:
			return err
		case existing == nil:
			if err := client.Mkdir(remote); err != nil {
				return fmt.Errorf("failed to create remote directory %s: %w", remote, err)
			}
		case !existing.IsDir():
			return fmt.Errorf("remote path %s exists but is not a directory", remote)
		}
		return nil
	})
}

func uploadFile(client *sftp.Client, localPath, remotePath string) error {
	local, err := os.Open(localPath)
	if err != nil {
		return err
	}
	defer func() { _ = local.Close() }()
	remote, err := client.Create(remotePath)
	if err != nil {
		return fmt.Errorf("failed to create remote file %s: %w", remotePath, err)
	}
	defer func() { _ = remote.Close() }()
	if _, err := remote.ReadFrom(local); err != nil {
		return fmt.Errorf("failed to copy file %s to remote path %s: %w", localPath, remotePath, err)
	}
	return nil
}
