namespace custos {}
