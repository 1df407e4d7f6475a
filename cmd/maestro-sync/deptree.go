package main

import (
	"fmt"

	"github.com/spf13/cobra"
)

func newDeptree(g *globals) *cobra.Command {
	var recursive bool
	cmd := &cobra.Command{
		Use:   "deptree [PATH] [SERVICE...]",
		Short: "Print the dependency tree of services",
		Long: `deptree prints, for each service (or the given ones), the services it
requires, as a tree. A dependency already shown in a service's tree is not
repeated unless -r is given. With several environments, each is printed
under its name.`,
		RunE: func(cmd *cobra.Command, args []string) error {
			var pathArgs []string
			if len(args) > 0 && g.file == "" && isPath(args[0]) {
				pathArgs, args = args[:1], args[1:]
			}
			repo, err := g.load(cmd, pathArgs)
			if err != nil {
				return err
			}
			if report(cmd.ErrOrStderr(), repo) > 0 {
				return exitCode(1)
			}
			out := cmd.OutOrStdout()
			for i, env := range repo.Environments {
				if len(repo.Environments) > 1 {
					if i > 0 {
						fmt.Fprintln(out)
					}
					fmt.Fprintf(out, "# %s (%s)\n", env.Name, env.File)
				}
				var services []string
				for _, s := range args {
					if env.Service(s) == nil {
						if len(repo.Environments) == 1 {
							return fmt.Errorf("%s is not a service of environment %s", s, env.Name)
						}
						continue
					}
					services = append(services, s)
				}
				if len(args) > 0 && len(services) == 0 {
					continue
				}
				env.DepTree(out, services, recursive)
			}
			return nil
		},
	}
	cmd.Flags().BoolVarP(&recursive, "recursive", "r", false, "show dependencies already shown again")
	return cmd
}
