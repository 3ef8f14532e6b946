// etcd, built from go.etcd.io/etcd/server/v3 at the version pinned in ../go.mod, as the
// storage of the tests' throw-away API server (see scripts/kubernetes.sh).
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() {
	etcdmain.Main(os.Args)
}
