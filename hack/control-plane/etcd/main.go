// Command etcd is the etcd server at the version kube-apiserver's own module graph requires,
// so the test control plane pairs the two releases that Kubernetes tests together.
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() { etcdmain.Main(os.Args) }
