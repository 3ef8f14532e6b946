// kube-apiserver, built from k8s.io/kubernetes at the version pinned in ../go.mod, for the
// tests' throw-away API server (see scripts/kubernetes.sh). Same entry point as upstream's
// cmd/kube-apiserver, minus its extra logging and metrics set-up.
package main

import (
	"os"

	"k8s.io/kubernetes/cmd/kube-apiserver/app"
)

func main() {
	if err := app.NewAPIServerCommand().Execute(); err != nil {
		os.Exit(1)
	}
}
