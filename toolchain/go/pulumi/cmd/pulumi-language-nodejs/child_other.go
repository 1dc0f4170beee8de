//go:build !linux

package main

import "os/exec"

// killWithParent has no portable equivalent outside Linux; the engine watch in main and the
// request cancellation in runNode stop the program instead.
func killWithParent(*exec.Cmd) {}
