module github.com/clawloops/cookiejail

go 1.22
