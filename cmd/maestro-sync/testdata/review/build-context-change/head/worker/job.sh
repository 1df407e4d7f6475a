echo job
