"""One module per subcommand; each imports torch and yoso_core inside its function so --help is instant."""
