// Package buildinfo holds the versions that toolchain/bootstrap sets at link time (-X), so that
// one `go build` can link all of this module's binaries with their own version.
package buildinfo

var (
	// Command is the @pulumi/command version the stand-in command provider reports.
	Command = "0.0.0-dev"
	// Random is the @pulumi/random version the stand-in random provider reports.
	Random = "0.0.0-dev"
)
