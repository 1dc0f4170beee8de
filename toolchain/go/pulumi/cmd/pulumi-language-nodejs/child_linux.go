package main

import (
	"os/exec"
	"syscall"
)

// killWithParent makes the kernel SIGKILL the program if this host dies first (for example by
// SIGPIPE or SIGKILL), so that no node process outlives it. Not upstream; Linux only.
func killWithParent(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
