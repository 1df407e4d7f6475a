package main

import (
	"fmt"

	"github.com/spf13/cobra"
)

func newValidate(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "validate [PATH]",
		Short: "Check manifests and print every problem found",
		Long: `validate loads every environment under PATH and prints each problem as
FILE:LINE:COL: yaml.path: message. It exits 0 when every environment is valid
and 1 otherwise. Warnings (such as unknown keys) do not fail validation
unless --strict is given.`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			repo, err := g.load(cmd, args)
			if err != nil {
				return err
			}
			errs := report(cmd.ErrOrStderr(), repo)
			if errs > 0 {
				fmt.Fprintf(cmd.ErrOrStderr(), "%d error(s); invalid: %v\n", errs, repo.Invalid)
				return exitCode(1)
			}
			n := 0
			for _, env := range repo.Environments {
				n += len(env.Instances())
			}
			fmt.Fprintf(cmd.OutOrStdout(), "%d environment(s), %d instance(s): valid\n", len(repo.Environments), n)
			return nil
		},
	}
}
