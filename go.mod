module github.com/tripline/tripline

go 1.26
